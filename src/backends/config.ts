import { z } from 'zod';
import { BACKEND_NAME } from './backend.js';
import { hostKeyProblem } from './keys.js';
import { NFS_OPTIONS } from './nfs-options.js';
import { checkOptions, type Allowlist } from './options.js';
import { SSHFS_OPTIONS } from './sshfs-options.js';

/** A pinned OpenSSH public key line: type and base64 blob (a trailing comment is dropped). */
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$/;

const name = z.string().regex(BACKEND_NAME, 'lowercase letters, digits and dashes, at most 32, starting and ending with a letter or digit');
const absolutePath = (message: string) =>
  z
    .string()
    .regex(/^\/\S*$/, message)
    .transform((p) => p.replace(/(.)\/+$/, '$1'));

/** Mount options on the backend's allowlist; the first one that is not becomes the field's message. */
const mountOptions = (list: Allowlist) =>
  z
    .array(z.string())
    .default([])
    .superRefine((opts, ctx) => {
      try {
        checkOptions(list, opts);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

export const sshfsBackendSchema = z
  .object({
    name,
    type: z.literal('sshfs'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'a plain user name'),
    path: absolutePath('an absolute path on the server'),
    hostKey: z
      .string()
      .transform((k) => k.trim().split(/\s+/).slice(0, 2).join(' '))
      .refine((k) => HOST_KEY.test(k), 'the server host key as "ssh-ed25519 AAAA…" (see ssh-keyscan); it is required: tether never accepts an unknown host')
      .superRefine((k, ctx) => {
        const problem = HOST_KEY.test(k) ? hostKeyProblem(k) : undefined;
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    privateKeyFile: z.string().min(1),
    mountOptions: mountOptions(SSHFS_OPTIONS),
    /** SSH connections the controller's SFTP work spreads over (each its own sftp-server on the server); more only under load. */
    sftpSessions: z.number().int().min(1).max(16).default(4),
  })
  .strict();

export const nfsBackendSchema = z
  .object({
    name,
    type: z.literal('nfs'),
    server: z.string().regex(/^[A-Za-z0-9.:-]+$/, 'a host name or IP address'),
    share: absolutePath('the exported path, absolute (for NFSv4, the path in the pseudo filesystem)'),
    mountOptions: mountOptions(NFS_OPTIONS),
  })
  .strict();

export const backendSchema = z.discriminatedUnion('type', [sshfsBackendSchema, nfsBackendSchema]);

export type SshfsBackendConfig = z.infer<typeof sshfsBackendSchema>;
export type NfsBackendConfig = z.infer<typeof nfsBackendSchema>;
export type BackendConfig = z.infer<typeof backendSchema>;
