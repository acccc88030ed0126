// proto/csi.proto must be the CSI v1.12.0 spec, byte for byte; proto/pluginregistration.proto must be
// the kubelet's registration API, name for name and number for number; the types generated from them
// must match how the server decodes them.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { CSI_PROTO, loadCsiRoot, LOADER_OPTIONS, parseProto, REGISTRATION_PROTO } from '../../src/grpc/proto.js';
import { ROOT_JSON as KEEPER_ROOT_JSON } from '../../src/keeper/generated/keeper-root.js';
import { ROOT_JSON as REGISTRATION_ROOT_JSON } from '../../src/csi/generated/registration-root.js';

/** sha256 of csi.proto as released in container-storage-interface/spec v1.12.0. */
const CSI_V1_12_0_SHA256 = '5b81236a3809f3ff0b877ff9b82215d0b74a8e291d7f3ec6ee1a44f537c0f86a';

// This file runs from dist/test/unit/.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ours = path.join(repoRoot, 'proto/csi.proto');
const shared = path.resolve(repoRoot, '../shared/spec/csi.proto');

describe('proto/csi.proto', () => {
  test('is the v1.12.0 spec (sha256)', () => {
    expect(createHash('sha256').update(readFileSync(ours)).digest('hex')).toBe(CSI_V1_12_0_SHA256);
  });

  test('declares version 1.12.0 content: csi.v1 with the 19 secret fields', () => {
    const text = readFileSync(ours, 'utf8');
    expect(text).toMatch(/^package csi\.v1;$/m);
    expect(text.match(/\(csi_secret\) = true/g)).toHaveLength(19);
  });

  (existsSync(shared) ? test : test.skip)('is byte-identical to ../shared/spec/csi.proto', () => {
    expect(readFileSync(ours).equals(readFileSync(shared))).toBe(true);
  });
});

describe('the generated request and response types (npm run gen)', () => {
  const scripts = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const gen = scripts['gen:csi']!;
  const genKeeper = scripts['gen:keeper']!;

  test('are generated with the options the server decodes requests with', () => {
    // A type generated with other options would lie: e.g. int64 as a number while the server hands a string.
    const flags: Record<string, string> = { keepCase: '--keepCase', longs: '--longs=String', enums: '--enums=String', defaults: '--defaults', oneofs: '--oneofs' };
    expect(Object.keys(LOADER_OPTIONS).sort()).toEqual(Object.keys(flags).sort());
    expect(LOADER_OPTIONS).toMatchObject({ keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    for (const flag of Object.values(flags)) {
      expect(gen.split(/\s+/)).toContain(flag);
      expect(genKeeper.split(/\s+/)).toContain(flag);
    }
  });

  test('npm run gen makes both: the CSI types and the mount keeper\'s', () => {
    expect(scripts.gen).toBe('npm run -s gen:csi && npm run -s gen:keeper');
    expect(genKeeper).toMatch(/^rm -rf src\/keeper\/generated && proto-loader-gen-types .*-I proto .*-O src\/keeper\/generated keeper\.proto && node test\/tools\/proto-json\.mjs proto\/keeper\.proto src\/keeper\/generated\/keeper-root\.ts$/);
    expect(readFileSync(path.join(repoRoot, '.gitignore'), 'utf8')).toMatch(/^\/src\/keeper\/generated\/$/m);
  });

  test('come from proto/csi.proto and proto/pluginregistration.proto, into the git-ignored src/csi/generated/, rebuilt from scratch', () => {
    expect(gen).toMatch(/^rm -rf src\/csi\/generated && proto-loader-gen-types /);
    expect(gen).toMatch(/-I proto .* csi\.proto pluginregistration\.proto && node test\/tools\/proto-json\.mjs proto\/csi\.proto src\/csi\/generated\/csi-root\.ts && node test\/tools\/proto-json\.mjs proto\/pluginregistration\.proto src\/csi\/generated\/registration-root\.ts$/);
    expect(gen).toContain('-O src/csi/generated');
    expect(readFileSync(path.join(repoRoot, '.gitignore'), 'utf8')).toMatch(/^\/src\/csi\/generated\/$/m);
  });
});

describe('the descriptors the driver starts from (npm run gen: csi-root.ts, registration-root.ts, keeper-root.ts)', () => {
  // protobufjs' Root.fromJSON drops enum values' options (the spec's alpha_enum_value marks), which tether never reads.
  const withoutEnumValueOptions = (json: unknown) => JSON.parse(JSON.stringify(json, (key, value: unknown) => (key === 'valuesOptions' ? undefined : value)));
  const pkg = (root: protobuf.Root, name: string) => withoutEnumValueOptions(root.lookup(name)!.toJSON());

  test('csi-root is proto/csi.proto as parsed from its text: every csi.v1 type, field, field option (csi_secret), enum and service', () => {
    expect(pkg(loadCsiRoot(), 'csi.v1')).toEqual(pkg(parseProto(CSI_PROTO), 'csi.v1'));
    expect(Object.keys(pkg(loadCsiRoot(), 'csi.v1').nested).length).toBeGreaterThan(80); // the top-level messages, enums and services of csi.v1
  });

  test.each([
    ['registration-root', REGISTRATION_ROOT_JSON, REGISTRATION_PROTO, 'pluginregistration'],
    ['keeper-root', KEEPER_ROOT_JSON, path.join(repoRoot, 'proto/keeper.proto'), 'tether.keeper.v1'],
  ])('%s is its proto as parsed from its text', (_name, json, file, name) => {
    const root = protobuf.Root.fromJSON(json);
    root.resolveAll();
    expect(pkg(root, name)).toEqual(pkg(parseProto(file), name));
  });

  test('knows the secrets: NodeStageVolumeRequest.secrets carries csi_secret', () => {
    expect(loadCsiRoot().lookupType('csi.v1.NodeStageVolumeRequest').fields.secrets!.options).toEqual({ '(csi_secret)': true });
  });
});

describe('proto/pluginregistration.proto', () => {
  // k8s.io/kubelet/pkg/apis/pluginregistration/v1/api.proto (k8s.io/kubelet v0.36.1), field by field:
  // the kubelet decodes by these numbers and calls by these names, so one slip and registration fails.
  const KUBELET_API: Record<string, [name: string, id: number, type: string, repeated: boolean][]> = {
    PluginInfo: [
      ['type', 1, 'string', false],
      ['name', 2, 'string', false],
      ['endpoint', 3, 'string', false],
      ['supported_versions', 4, 'string', true],
    ],
    RegistrationStatus: [
      ['plugin_registered', 1, 'bool', false],
      ['error', 2, 'string', false],
    ],
    RegistrationStatusResponse: [],
    InfoRequest: [],
  };
  const root = new protobuf.Root().loadSync(REGISTRATION_PROTO, { keepCase: true });
  root.resolveAll();

  test('is proto3 in package pluginregistration (no version in the package name), with an Apache-2.0 attribution', () => {
    const text = readFileSync(REGISTRATION_PROTO, 'utf8');
    expect(text).toMatch(/^syntax = "proto3";$/m);
    expect(text).toMatch(/^package pluginregistration;/m);
    expect(text).toContain('Licensed under the Apache License, Version 2.0');
    expect(text).toContain('The Kubernetes Authors');
    expect(root.lookup('pluginregistration')).not.toBeNull();
  });

  test.each(Object.entries(KUBELET_API))('message %s has exactly the kubelet\'s fields', (message, fields) => {
    const type = root.lookupType(`pluginregistration.${message}`);
    expect(type.fieldsArray.map((f) => [f.name, f.id, f.type, f.repeated])).toEqual(fields);
  });

  test('it declares no other message, and service Registration has exactly GetInfo and NotifyRegistrationStatus', () => {
    const ns = root.lookup('pluginregistration') as protobuf.Namespace;
    expect(ns.nestedArray.filter((o) => o instanceof protobuf.Type).map((o) => o.name).sort()).toEqual(Object.keys(KUBELET_API).sort());
    const service = root.lookupService('pluginregistration.Registration');
    expect(service.methodsArray.map((m) => [m.name, m.requestType, m.responseType, Boolean(m.requestStream), Boolean(m.responseStream)])).toEqual([
      ['GetInfo', 'InfoRequest', 'PluginInfo', false, false],
      ['NotifyRegistrationStatus', 'RegistrationStatus', 'RegistrationStatusResponse', false, false],
    ]);
  });
});
