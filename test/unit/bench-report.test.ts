import { met, table, targetText, type Row } from '../../bench/lib/report.js';
import { median, percentile, rotate } from '../../bench/lib/stats.js';

const row = (over: Partial<Row>): Row => ({ suite: 's', metric: 'm', unit: 'ms', better: 'lower', baselineName: 'b', baseline: 100, tether: 50, target: {}, ...over });

describe('met: whether a benchmark row reaches its target', () => {
  test.each([
    ['lower is better, under the ratio', row({ tether: 90, target: { ratio: 1.0 } }), true],
    ['lower is better, over the ratio', row({ tether: 130, target: { ratio: 1.2 } }), false],
    ['lower is better, at the bound exactly', row({ tether: 120, target: { ratio: 1.2 } }), true],
    ['higher is better, over the ratio', row({ better: 'higher', tether: 70, target: { ratio: 0.6 } }), true],
    ['higher is better, under the ratio', row({ better: 'higher', tether: 50, target: { ratio: 0.6 } }), false],
    ['both bounds, one missed', row({ better: 'higher', tether: 900, baseline: 1000, target: { absolute: 1000, ratio: 0.6 } }), false],
    ['both bounds, both met', row({ better: 'higher', tether: 1200, baseline: 1000, target: { absolute: 1000, ratio: 0.6 } }), true],
    ['an absolute bound without a baseline', row({ baseline: NaN, tether: 250, target: { absolute: 300 } }), true],
    ['a ratio without a baseline cannot be judged', row({ baseline: NaN, target: { ratio: 1 } }), undefined],
    ['no number from tether cannot be judged', row({ tether: NaN, target: { absolute: 1 } }), undefined],
    ['no target', row({}), undefined],
  ])('%s', (_, r, expected) => {
    expect(met(r)).toBe(expected);
  });
});

describe('the table', () => {
  test('says the target as the issue does, and NO where it is missed', () => {
    const r = row({ better: 'higher', unit: 'pairs/s', tether: 500, baseline: 1000, target: { absolute: 1000, ratio: 0.6 } });
    expect(targetText(r)).toBe('≥ 1000 pairs/s and ≥ 0.60×');
    const text = table([r]);
    expect(text).toMatch(/\| s: m +\| b +\| +1000 pairs\/s \| +500 pairs\/s \| 0\.50× \| ≥ 1000 pairs\/s and ≥ 0\.60× \| NO +\|/);
  });

  test('a row without a target says so instead of yes', () => {
    expect(table([row({})])).toMatch(/\| — +\| — +\|$/m);
  });
});

describe('statistics', () => {
  test.each([
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
    [[], NaN],
  ])('median of %j is %s', (xs, m) => {
    expect(median(xs)).toBe(m);
  });

  test.each([
    [99, 99],
    [50, 50],
    [100, 100],
    [1, 1],
  ])('p%s of 1..100 is %s', (p, v) => {
    expect(percentile(Array.from({ length: 100 }, (_, i) => 100 - i), p)).toBe(v);
  });

  test('rotate gives every side its turn first', () => {
    expect([0, 1, 2].map((k) => rotate(k, ['a', 'b', 'c'])[0])).toEqual(['a', 'b', 'c']);
  });
});
