import type protobuf from 'protobufjs';

const REDACTED = '[redacted]';

/** For one message type: which fields are secret, and which fields hold other messages to walk into. */
interface MessageShape {
  secret: Set<string>;
  nested: Map<string, string>;
}

/**
 * Builds a redactor from the proto itself: every field marked `[(csi_secret) = true]` is replaced,
 * at any depth, so a new secret field in a later spec is covered without a hand-kept list.
 */
export function buildRedactor(root: protobuf.Root): {
  secretFields: string[];
  redact: (typeName: string, message: unknown) => unknown;
} {
  const shapes = new Map<string, MessageShape>();
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      if ('fieldsArray' in obj) {
        const type = obj as protobuf.Type;
        const shape: MessageShape = { secret: new Set(), nested: new Map() };
        for (const field of type.fieldsArray) {
          if (field.options?.['(csi_secret)'] === true) shape.secret.add(field.name);
          else if (field.resolvedType && 'fieldsArray' in field.resolvedType) shape.nested.set(field.name, field.resolvedType.fullName);
        }
        shapes.set(type.fullName, shape);
      }
      if ('nestedArray' in obj) visit(obj as protobuf.NamespaceBase);
    }
  };
  visit(root);

  const redact = (typeName: string, message: unknown): unknown => {
    const shape = shapes.get(typeName.startsWith('.') ? typeName : `.${typeName}`);
    if (!shape || message === null || typeof message !== 'object') return message;
    if (Array.isArray(message)) return message.map((m) => redact(typeName, m));
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(message)) {
      if (shape.secret.has(key)) out[key] = redactValue(value);
      else if (shape.nested.has(key)) out[key] = redact(shape.nested.get(key)!, value);
      else out[key] = value;
    }
    return out;
  };

  const secretFields = [...shapes].flatMap(([name, s]) => [...s.secret].map((f) => `${name.slice(1)}.${f}`));
  return { secretFields, redact };
}

/** A secret map keeps its keys (useful when debugging which secret was sent) but loses every value. */
function redactValue(value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.keys(value).map((k) => [k, REDACTED]));
  }
  return value === '' || value === undefined ? value : REDACTED;
}
