// The one-line error a config text gets from src/config.ts, for the unit tests of config and options.
import { ConfigError, parseConfigText } from '../../src/config.js';

/** The one-line error message of `text` (read as "tether.yaml"), or fails if the text parses. */
export function configError(text: string): string {
  let thrown: unknown;
  try {
    parseConfigText(text, 'tether.yaml');
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  const message = (thrown as Error).message;
  expect(message).not.toContain('\n');
  expect(message.startsWith('tether.yaml: ')).toBe(true);
  return message;
}
