// `npm run build`'s last step: dist/src/main.js (the bin, the image's entrypoint, what the tests and
// benchmarks start) becomes one minified ESM file holding tether and its dependencies, so that
// start-up reads and links one file instead of ~400 modules (see bench/suites/process.ts). What
// main.ts imports dynamically (another mode's services, the mount keeper, prom-client, /healthz,
// the kubelet registration) is evaluated only when imported. (Chunks of their own, esbuild's
// splitting, cost a node plugin more than they saved: it needs most of them, as ~40 files.) The
// other compiled modules in dist/src stay as tsc wrote them (unit tests import them).
// ssh2 stays in node_modules: it loads a native binding and a WebAssembly module of its own.
import { build } from 'esbuild';

const entry = 'dist/src/main.js';

/**
 * zod registers English messages itself (classic/schemas.js imports locales/en.js); its `z.locales`
 * namespace of ~50 other languages — a fifth of the bundle — is never used by tether.
 */
const englishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes('/node_modules/zod/') ? { path: 'zod-locales', namespace: 'zod-english-only', pluginData: args.resolveDir } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, (args) => ({
      contents: "export { default as en } from '../locales/en.js';",
      resolveDir: args.pluginData,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  plugins: [englishOnly],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['ssh2'],
  // CommonJS dependencies bundled into an ES module still find require, __filename and __dirname.
  banner: {
    js: [
      "import { createRequire as __tetherRequire } from 'node:module';",
      "import { fileURLToPath as __tetherPath } from 'node:url';",
      'const require = __tetherRequire(import.meta.url);',
      'const __filename = __tetherPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join('\n'),
  },
  // Minified (names kept: error and class names show in logs): V8 keeps the source of every
  // function it may compile later, so a smaller file is a smaller resident set too (-12 MiB).
  minify: true,
  keepNames: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
