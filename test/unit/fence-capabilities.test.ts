// src/mounts/fence.ts missingFenceCapabilities: what a node plugin lacks for a complete fence, read
// from its CapEff (a managed Docker plugin or a container gets only the capabilities it is given).
import { missingFenceCapabilities } from '../../src/mounts/fence.js';

const status = (capEff: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

test.each<[string, string, string[]]>([
  ['root on the host (every capability)', '000001ffffffffff', []],
  ['a privileged container', '000001ffffffffff', []],
  ['CAP_SYS_ADMIN and CAP_NET_ADMIN only', (2n ** 21n + 2n ** 12n).toString(16).padStart(16, '0'), []],
  ['CAP_SYS_ADMIN only (a managed plugin without CAP_NET_ADMIN)', (2n ** 21n).toString(16).padStart(16, '0'), ['CAP_NET_ADMIN']],
  ["Docker's default set", '00000000a80425fb', ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']],
  ['no capabilities', '0000000000000000', ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']],
])('%s → missing %j', (_, capEff, missing) => {
  expect(missingFenceCapabilities(status(capEff))).toEqual(missing);
});

test('no CapEff line (not Linux procfs): nothing is claimed missing', () => {
  expect(missingFenceCapabilities('')).toEqual([]);
});
