import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's proto/ directory, found upwards from this module: dist/src/util/ when run as
 * compiled, dist/ when bundled (the bin), src/util/ under the test runner. Read once at start, on
 * the local disk the package is installed on.
 */
export const PROTO_DIR = findUp(path.dirname(fileURLToPath(import.meta.url)), 'proto/csi.proto');

function findUp(from: string, file: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, file))) return path.dirname(path.join(dir, file));
    if (path.dirname(dir) === dir) throw new Error(`${file} not found above ${from}`);
  }
}
