// src/node/recovery-plan.ts: what mounting a staged FUSE volume again takes, from the mount table.
import type { MountEntry } from '../../src/mounts/mount-table.js';
import { recoveryPlan, withTarget, type StageRecord } from '../../src/node/recovery-plan.js';

const SOURCE = 'tether@storage:/srv/volumes/pvc-1';
const STAGING = '/k/plugins/pvc-1/globalmount';
const T1 = '/k/pods/a/mount';
const T2 = '/k/pods/b/mount';
const record: StageRecord = { volumeId: 'box/pvc-1', staging: STAGING, flags: [], readonly: false, targets: [{ path: T1, readonly: false }, { path: T2, readonly: true }] };

const mount = (target: string, device: string, source = SOURCE, fstype = 'fuse.sshfs', options = ['rw']): MountEntry => ({ target, source, fstype, options, device });
const staged = mount(STAGING, '0:50');
const bind = (target: string, device = '0:50') => mount(target, device, `${SOURCE}[/data]`);

describe('recoveryPlan', () => {
  test('staged, its daemon alive, targets bound from it: nothing to do', () => {
    expect(recoveryPlan(record, [staged, bind(T1), bind(T2)], SOURCE, true)).toEqual({ kind: 'ok' });
  });

  test('staged, and whether its daemon lives is not known (the keeper does not list it): nothing to do', () => {
    expect(recoveryPlan(record, [staged, bind(T1)], SOURCE, undefined)).toEqual({ kind: 'ok' });
  });

  test('its daemon is dead: the staging mount is made again and every recorded target bound from it is bound again', () => {
    expect(recoveryPlan(record, [staged, bind(T1), bind(T2)], SOURCE, false)).toEqual({
      kind: 'remount',
      dead: staged,
      rebind: [
        { target: T1, readonly: false, current: bind(T1) },
        { target: T2, readonly: true, current: bind(T2) },
      ],
    });
  });

  test('a recorded target with nothing mounted (someone took it down: recovery never does) is not bound again; one holding something else is never touched', () => {
    const foreign = mount(T2, '0:77', 'tmpfs', 'tmpfs');
    expect(recoveryPlan(record, [staged, foreign], SOURCE, false)).toEqual({ kind: 'remount', dead: staged, rebind: [] });
  });

  test('a bind of the volume that is not a recorded target (someone else made it) is not touched', () => {
    const plan = recoveryPlan({ ...record, targets: [] }, [staged, bind(T1), bind('/elsewhere')], SOURCE, false);
    expect(plan).toEqual({ kind: 'remount', dead: staged, rebind: [] });
  });

  test('a bind of another staging mount of the volume (another device) is not rebound when this one is dead', () => {
    const plan = recoveryPlan(record, [staged, bind(T1), bind(T2, '0:51')], SOURCE, false);
    expect(plan.kind === 'remount' && plan.rebind.map((r) => r.target)).toEqual([T1]);
  });

  test('staged and alive, but a target still holds the volume\'s old mount (another device): that target is bound again', () => {
    expect(recoveryPlan(record, [staged, bind(T1), bind(T2, '0:42')], SOURCE, true)).toEqual({ kind: 'rebind', rebind: [{ target: T2, readonly: true, current: bind(T2, '0:42') }] });
  });

  test('not staged, no target bound: unstaged (or let go of) — the record goes', () => {
    expect(recoveryPlan(record, [], SOURCE, undefined)).toEqual({ kind: 'forget' });
  });

  test('not staged, but a target still bound (the staging mount went first, and the plugin died before mounting it again): staged again', () => {
    expect(recoveryPlan(record, [bind(T1, '0:42')], SOURCE, undefined)).toEqual({ kind: 'remount', rebind: [{ target: T1, readonly: false, current: bind(T1, '0:42') }] });
  });

  test('another volume (or anything else) mounted at the staging path: never touched', () => {
    const other = mount(STAGING, '0:60', 'tether@storage:/srv/volumes/pvc-2');
    expect(recoveryPlan(record, [other, bind(T1, '0:60')], SOURCE, false)).toEqual({ kind: 'ok' });
  });

  test('the topmost mount at a path counts (a mount stacked on the dead one)', () => {
    const fresh = mount(STAGING, '0:61');
    expect(recoveryPlan(record, [staged, fresh, bind(T1, '0:61'), bind(T2, '0:61')], SOURCE, true)).toEqual({ kind: 'ok' });
  });
});

describe('withTarget', () => {
  test('adds a target, or updates its read-only flag, once', () => {
    const one = withTarget({ ...record, targets: [] }, T1, false);
    expect(one.targets).toEqual([{ path: T1, readonly: false }]);
    expect(withTarget(one, T1, true).targets).toEqual([{ path: T1, readonly: true }]);
    expect(withTarget(one, T2, true).targets).toEqual([{ path: T1, readonly: false }, { path: T2, readonly: true }]);
  });
});
