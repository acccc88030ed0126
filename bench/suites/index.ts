// Every benchmark `npm run bench` runs, in this order.
import type { Suite } from '../lib/context.js';
import { provisioning } from './provisioning.js';
import { scale } from './scale.js';
import { nfs } from './nfs.js';

export const SUITES: Suite[] = [provisioning, scale, nfs];
