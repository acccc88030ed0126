import { invalid } from '../csi/errors.js';

/** A rule for an option's value. */
export type ValueRule = { test(value: string): boolean };

/** The mount options a user may set for one kind of backend; anything else is refused. */
export interface Allowlist {
  /** What the options are, for messages ("mount option", "NFS mount option"). */
  label: string;
  /** Options without a value. */
  flags: ReadonlySet<string>;
  /** Options with a value, and what the value may be. */
  valued: Readonly<Record<string, ValueRule>>;
  /** Added to the message for an option that is not on the list at all. */
  why?: string;
  /** Options refused for a reason of their own, which the message gives instead of `why`. */
  refused?: Readonly<Record<string, string>>;
}

/** A whole number from 0 to `max`. */
export const uint = (max: number): ValueRule => ({ test: (v) => /^\d{1,10}$/.test(v) && Number(v) <= max });

/** Splits "a,b=c" items into single options. */
export function splitOptions(options: readonly string[]): string[] {
  return options.flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
}

/** Throws INVALID_ARGUMENT naming the first option outside the allowlist, and what is allowed. */
export function checkOptions(list: Allowlist, options: readonly string[]): void {
  for (const option of splitOptions(options)) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : option.slice(eq + 1);
    const valued = Object.hasOwn(list.valued, key);
    if (value === undefined ? list.flags.has(key) : valued && list.valued[key]!.test(value)) continue;
    const refused = list.refused && Object.hasOwn(list.refused, key) ? list.refused[key] : undefined;
    const why = refused
      ? `"${key}" is refused: ${refused}`
      : valued
        ? `the value "${value ?? ''}" is not allowed for ${key}`
        : `"${key}" is not on the allowlist${list.why ? ` (${list.why})` : ''}`;
    throw invalid(`${list.label} "${option}": ${why}; allowed: ${[...list.flags, ...Object.keys(list.valued).map((k) => `${k}=…`)].join(' ')}`);
  }
}
