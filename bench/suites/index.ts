// Every benchmark `npm run bench` runs, in this order.
import type { Suite } from '../lib/context.js';
import { overhead } from './overhead.js';
import { processSuite } from './process.js';
import { provisioning } from './provisioning.js';

export const SUITES: Suite[] = [provisioning, overhead, processSuite];
