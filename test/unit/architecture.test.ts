// The shape of src/, checked from its source text: folders import only folders below them (so a
// newcomer can read from the handlers down to the pure rules), no file imports itself round a
// cycle, no handler function outgrows a screen, and no `any` hides a type.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');
/** Generated from proto/csi.proto and proto/keeper.proto by the build: not ours to shape. */
const GENERATED = ['csi/generated/', 'keeper/generated/'];

/** src/ folders from the top down: each may import only folders on a later line. */
const LAYERS: readonly (readonly string[])[] = [
  ['.'], // main.ts, config.ts, identity.ts: the command line and the wiring
  ['controller', 'node', 'docker'], // the CSI handlers, one file per concern, and Docker's volume plugin over them; siblings do not import each other
  ['keeper'], // the mount keeper: its gRPC service over a unix socket, its rules, and the node's client
  ['grpc'], // server, request pipeline, RPC tables, secret redaction, metrics
  ['volumes'], // the layout on a backend, records, the registry of backends, pure rules
  ['backends'], // sshfs and NFS: remote file operations and mount specs
  ['mounts'], // mount, unmount with its escalation, mount table, probe
  ['csi'], // CSI status errors and the types generated from the proto
  ['util'], // running programs, timeouts
];
const MAX_FUNCTION_LINES = 60;

interface SourceFile {
  /** Path below src/, e.g. "controller/publish.ts". */
  name: string;
  /** The files it imports, as paths below src/ (relative imports only). */
  imports: string[];
  ast: ts.SourceFile;
}

/** The folder of a file below src/: its first path segment, or "." for the top level. */
const folderOf = (name: string) => (name.includes('/') ? name.slice(0, name.indexOf('/')) : '.');

/** Imports that cross folders the wrong way: upward, sideways between siblings, or into a folder with no layer. */
export function layerViolations(files: readonly Pick<SourceFile, 'name' | 'imports'>[], layers: readonly (readonly string[])[]): string[] {
  const rank = new Map(layers.flatMap((folders, i) => folders.map((f) => [f, i] as const)));
  const problems: string[] = [];
  for (const file of files) {
    const from = folderOf(file.name);
    if (!rank.has(from)) problems.push(`${file.name}: folder "${from}" has no layer`);
    for (const target of file.imports) {
      const to = folderOf(target);
      if (to === from) continue;
      if (!rank.has(to)) problems.push(`${file.name} imports ${target}: folder "${to}" has no layer`);
      else if (rank.get(to)! <= rank.get(from)!) problems.push(`${file.name} imports ${target}: ${to}/ is not below ${from}/`);
    }
  }
  return problems;
}

/** Every import cycle among the files, each as the files round it. */
export function importCycles(files: readonly Pick<SourceFile, 'name' | 'imports'>[]): string[][] {
  const graph = new Map(files.map((f) => [f.name, f.imports]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[][] = [];
  const visit = (name: string, trail: string[]) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(name)), name]);
      return;
    }
    state.set(name, 'open');
    for (const next of graph.get(name) ?? []) visit(next, [...trail, name]);
    state.set(name, 'done');
  };
  for (const name of graph.keys()) visit(name, []);
  return cycles;
}

/** Functions (declarations, expressions, arrows, methods) longer than `max` lines, as "file:line name (n lines)". */
export function longFunctions(file: Pick<SourceFile, 'name' | 'ast'>, max: number): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = file.ast.getLineAndCharacterOfPosition(node.getStart(file.ast)).line + 1;
      const lines = file.ast.getLineAndCharacterOfPosition(node.getEnd()).line + 2 - start;
      const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
      if (lines > max) found.push(`${file.name}:${start} ${name} (${lines} lines)`);
    }
    ts.forEachChild(node, visit);
  };
  visit(file.ast);
  return found;
}

/** Every `any` written in the file, as "file:line". */
export function anyTypes(file: Pick<SourceFile, 'name' | 'ast'>): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (node.kind === ts.SyntaxKind.AnyKeyword) found.push(`${file.name}:${file.ast.getLineAndCharacterOfPosition(node.getStart(file.ast)).line + 1}`);
    ts.forEachChild(node, visit);
  };
  visit(file.ast);
  return found;
}

function parse(name: string, text: string): SourceFile {
  const ast = ts.createSourceFile(name, text, ts.ScriptTarget.ES2022, true);
  const imports: string[] = [];
  const add = (specifier: string) => {
    if (!specifier.startsWith('.')) return;
    imports.push(path.posix.normalize(path.posix.join(path.posix.dirname(name), specifier)).replace(/\.js$/, '.ts'));
  };
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier.text);
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) add(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(ast);
  return { name, imports, ast };
}

let files: SourceFile[];
beforeAll(async () => {
  const names = (await readdir(SRC, { recursive: true })).filter((n) => n.endsWith('.ts') && !GENERATED.some((g) => n.startsWith(g))).sort();
  files = await Promise.all(names.map(async (n) => parse(n, await readFile(path.join(SRC, n), 'utf8'))));
});

describe('src/', () => {
  test('is read (guards against a wrong path making every check pass on nothing)', () => {
    expect(files.map((f) => f.name)).toEqual(expect.arrayContaining(['main.ts', 'controller/service.ts', 'node/service.ts', 'mounts/mounter.ts']));
    expect(files.find((f) => f.name === 'controller/service.ts')!.imports).toContain('controller/create-volume.ts');
  });

  test('no folder imports a folder above it or beside it, and every folder has a layer', () => {
    expect(layerViolations(files, LAYERS)).toEqual([]);
  });

  test('util/ imports nothing of tether but util/', () => {
    expect(files.filter((f) => folderOf(f.name) === 'util').flatMap((f) => f.imports.filter((i) => folderOf(i) !== 'util'))).toEqual([]);
  });

  test('no import cycle, not even of types', () => {
    expect(importCycles(files)).toEqual([]);
  });

  test(`no function in controller/ or node/ is longer than ${MAX_FUNCTION_LINES} lines`, () => {
    const handlers = files.filter((f) => ['controller', 'node'].includes(folderOf(f.name)));
    expect(handlers.length).toBeGreaterThan(8);
    expect(handlers.flatMap((f) => longFunctions(f, MAX_FUNCTION_LINES))).toEqual([]);
  });

  test('no `any` anywhere (requests and responses are typed from the proto)', () => {
    expect(files.flatMap(anyTypes)).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const graph = (edges: Record<string, string[]>) => Object.entries(edges).map(([name, imports]) => ({ name, imports }));

  test.each<[string, Record<string, string[]>, string[]]>([
    ['downward imports', { 'main.ts': ['node/a.ts'], 'node/a.ts': ['util/t.ts'], 'util/t.ts': [] }, []],
    ['within a folder', { 'node/a.ts': ['node/b.ts'], 'node/b.ts': [] }, []],
    ['upward', { 'util/t.ts': ['node/a.ts'] }, ['util/t.ts imports node/a.ts: node/ is not below util/']],
    ['sideways between siblings', { 'node/a.ts': ['controller/c.ts'] }, ['node/a.ts imports controller/c.ts: controller/ is not below node/']],
    ['up to the top level', { 'node/a.ts': ['config.ts'] }, ['node/a.ts imports config.ts: ./ is not below node/']],
    ['a folder with no layer', { 'extra/x.ts': ['util/t.ts'] }, ['extra/x.ts: folder "extra" has no layer']],
  ])('layerViolations: %s', (_, edges, expected) => {
    expect(layerViolations(graph(edges), [['.'], ['controller', 'node'], ['util']])).toEqual(expected);
  });

  test.each<[string, Record<string, string[]>, string[][]]>([
    ['none', { a: ['b'], b: ['c'], c: [] }, []],
    ['a diamond is no cycle', { a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }, []],
    ['two files', { a: ['b'], b: ['a'] }, [['a', 'b', 'a']]],
    ['a file importing itself', { a: ['a'] }, [['a', 'a']]],
    ['three files', { a: ['b'], b: ['c'], c: ['a'] }, [['a', 'b', 'c', 'a']]],
  ])('importCycles: %s', (_, edges, expected) => {
    expect(importCycles(graph(edges))).toEqual(expected);
  });

  test('longFunctions and anyTypes find what they look for', () => {
    const body = Array.from({ length: 61 }, (_, i) => `  const x${i} = ${i};`).join('\n');
    const file = parse('node/x.ts', `export function short() {\n  return 1;\n}\nexport const long = (y: any) => {\n${body}\n};\n`);
    expect(longFunctions(file, 60)).toEqual(['node/x.ts:4 (anonymous) (63 lines)']);
    expect(longFunctions(file, 63)).toEqual([]);
    expect(anyTypes(file)).toEqual(['node/x.ts:4']);
    expect(file.imports).toEqual([]);
    expect(parse('node/y.ts', "import { a } from './a.js';\nimport type { B } from '../volumes/b.js';\nexport * from '../util/c.js';\nimport 'pino';").imports).toEqual(['node/a.ts', 'volumes/b.ts', 'util/c.ts']);
  });
});
