// Every benchmark `npm run bench` runs, in this order.
import type { Suite } from '../lib/context.js';
import { attach } from './attach.js';
import { datapath } from './datapath.js';
import { nfs } from './nfs.js';
import { overhead } from './overhead.js';
import { processSuite } from './process.js';
import { provisioning } from './provisioning.js';
import { scale } from './scale.js';

export const SUITES: Suite[] = [provisioning, attach, datapath, overhead, processSuite, scale, nfs];
