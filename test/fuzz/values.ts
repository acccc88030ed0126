// Hostile field values for the fuzz test, each with a short kind name, so a failure can say what
// sort of value caused it ("volume_id=id-100k") without printing 100,000 characters.
import type { Prng } from './prng.js';

export interface Drawn<T> {
  value: T;
  kind: string;
}

/**
 * The huge values of one request (1 MiB strings, 100,000-char IDs, 10,000-entry maps and lists), in
 * string characters. Most calls get no room for any: the driver logs each failed request whole, so
 * every huge value grows its log (which the test keeps, to scan) and its CPU time by as much; a few
 * hundred of them over a run find what they can find. See BUDGET_TIERS.
 */
export class Budget {
  constructor(private left: number) {}

  /** Takes `chars` from the budget if it has them. */
  take(chars: number): boolean {
    if (chars > this.left) return false;
    this.left -= chars;
    return true;
  }

  fits(chars: number): boolean {
    return chars <= this.left;
  }
}

/** Per call: no huge value (96%), room for one 100,000-char ID or 10,000-entry map (3.6%), room for a 1 MiB string (0.4%). */
export const BUDGET_TIERS: readonly (readonly [number, number])[] = [
  [96, 0],
  [3.6, 320_000],
  [0.4, 1_200_000],
];

const ASTRAL = '😀𝕏𝄞🀄👩‍👩‍👧';
const RTL = '\u202Eevil\u202C txt';
const MIXED_SCRIPTS = 'שלום مرحبا 卷 Ωμέγα e\u0301 \u200B\uFEFF';

/** Fixed hostile strings by kind; huge ones are made on demand (HUGE_STRINGS). */
const STRINGS: Record<string, readonly string[]> = {
  empty: [''],
  unicode: [ASTRAL, RTL, MIXED_SCRIPTS, `vol-${ASTRAL}`, 'ＡＢＣ', 'İı'],
  'lone-surrogate': ['\uD800', 'a\uDC00b', '\uDBFF\uDFFF\uD800'],
  nul: ['\0', 'a\0b', 'box/vol\0', '\0/etc/passwd'],
  newline: ['a\nb', '\r\n', 'line1\nline2\n', 'x\n{"level":60,"msg":"forged log line"}'],
  control: ['\x1b[31mred\x1b[0m', '\x07\x08\x7f', '\u0085\u2028\u2029'],
  dotdot: ['..', '.', '../..', 'a/../..', '/..', '.../...'],
  traversal: ['../../etc/passwd', '..\\..\\windows', 'box/../../etc', 'box/..', 'box/.snapshots/../x', 'box/.groups/..', '../../../../../../../../tmp'],
  absolute: ['/', '/etc', '/etc/passwd', '/proc/self/root', '/dev/null', '/tmp', '/root/.ssh', '//', '/var/lib/kubelet'],
  injection: ['$(id)', '`id`', '; id', '| id', '-rf', '--help', '-o', '%s%s%n%x', '${jndi:ldap://x}', '{{7*7}}', "'; DROP TABLE v; --", '"', '\\'],
  whitespace: [' ', '\t', ' lead', 'trail ', '   '],
  numeric: ['0', '-1', '1e309', 'NaN', '0x10', '٣'],
  'chars-5000': ['p'.repeat(5000)],
  'component-300': ['c'.repeat(300)],
};

/** Strings too big to keep around: made when drawn, if the request's budget has room. */
const HUGE_STRINGS: Record<string, { chars: number; make: (prng: Prng) => string }> = {
  'mib-1': { chars: 1 << 20, make: (prng) => prng.pick(['x', 'é', '/', '.']).repeat(1 << 20) },
  'id-100k': { chars: 100_000, make: (prng) => prng.pick(['a', 'box/', '9']).repeat(100_000).slice(0, 100_000) },
};

/** A random string of printable ASCII, or of code points from all over Unicode. */
function randomString(prng: Prng): Drawn<string> {
  const length = prng.int(40);
  if (prng.chance(0.5)) {
    let s = '';
    for (let i = 0; i < length; i++) s += String.fromCharCode(prng.range(0x20, 0x7e));
    return { value: s, kind: 'random-ascii' };
  }
  const points: number[] = [];
  for (let i = 0; i < length; i++) points.push(prng.weighted([[3, prng.range(0, 0x7f)], [2, prng.range(0x80, 0xffff)], [1, prng.range(0x10000, 0x10ffff)]]));
  // Code points in the surrogate range become lone surrogates: invalid UTF-8 once encoded.
  return { value: points.map((p) => String.fromCodePoint(p)).join(''), kind: 'random-unicode' };
}

/** A hostile string of any kind; a huge one, often, while the request's budget has room for it. */
export function hostileString(prng: Prng, budget: Budget): Drawn<string> {
  const fitting = Object.keys(HUGE_STRINGS).filter((kind) => budget.fits(HUGE_STRINGS[kind]!.chars));
  if (fitting.length && prng.chance(0.3)) {
    const kind = prng.pick(fitting);
    const huge = HUGE_STRINGS[kind]!;
    budget.take(huge.chars);
    return { value: huge.make(prng), kind };
  }
  if (prng.chance(0.25)) return randomString(prng);
  const kind = prng.pick(Object.keys(STRINGS));
  return { value: prng.pick(STRINGS[kind]!), kind };
}

/** int64 fields travel as decimal strings (longs: String); these are the edges around them. */
const INT64S: Record<string, readonly string[]> = {
  zero: ['0'],
  small: ['1', '4096', '1048576', '1073741824'],
  negative: ['-1', '-1073741824'],
  'int64-max': ['9223372036854775807'],
  'int64-min': ['-9223372036854775808'],
  'beyond-int64': ['9223372036854775808', '18446744073709551615', '-9223372036854775809'],
  'beyond-double': ['9007199254740993', '4503599627370497'],
  junk: ['', '12abc', '1e3', ' 5', '0x10', '+7'],
};

export function hostileInt64(prng: Prng): Drawn<string> {
  const kind = prng.pick(Object.keys(INT64S));
  return { value: prng.pick(INT64S[kind]!), kind };
}

export function hostileInt32(prng: Prng): Drawn<number> {
  return prng.pick([
    { value: 0, kind: 'zero' },
    { value: 1, kind: 'small' },
    { value: 3, kind: 'small' },
    { value: -1, kind: 'negative' },
    { value: 2147483647, kind: 'int32-max' },
    { value: -2147483648, kind: 'int32-min' },
  ]);
}

/** A valid enum name, a number the enum does not have, or a name it does not have. */
export function hostileEnum(prng: Prng, names: readonly string[]): Drawn<string | number> {
  return prng.weighted<Drawn<string | number>>([
    [5, { value: prng.pick(names), kind: 'enum-valid' }],
    [2, { value: prng.pick([-1, names.length + 1, 99, 2147483647]), kind: 'enum-out-of-range' }],
    [1, { value: prng.pick(['BOGUS', 'single_node_writer', '']), kind: 'enum-unknown-name' }],
  ]);
}
