/**
 * The plugin contract of the admission path (src/api/plugins.ts composes the plugins; each
 * `use-*` file implements one). Types only, so plugins and the composer share them without
 * importing each other.
 */
import type { DocumentNode, OperationDefinitionNode, ValidationRule } from 'graphql';
import type { KeyPrincipal } from '../tenancy/key-cache.ts';
import type { ApiContext, Transport } from './types.ts';

export type AdmitRequest = {
  transport: Transport;
  /**
   * 'connect': a graphql-ws connection_init (who is calling; nothing runs yet, nothing is
   * counted). 'operation': one operation is about to be parsed and run.
   */
  phase: 'connect' | 'operation';
  /** The `Authorization` header value, or graphql-ws's connection_init `authorization`. */
  authorization: unknown;
  /** The client's address as the transport sees it (see clientAddress in use-auth-throttle.ts). */
  clientAddress: string;
  requestId: string;
};

/** What the admission steps share: the request plus what earlier steps found. */
export type AdmitState = AdmitRequest & {
  principal?: KeyPrincipal;
  /** Set by use-auth-throttle: only keys this process verified recently may pass. */
  cachedKeysOnly?: boolean;
};

/** Told how admission ended; may throw (or reject) to replace the error, or to refuse after all. */
export type AdmitDone = (outcome: { error?: unknown }) => void | Promise<void>;

export type OperationInfo = {
  transport: Transport;
  document: DocumentNode;
  operation: OperationDefinitionNode;
};

export interface ApiPlugin {
  readonly name: string;
  /** Extra validation rules, run with graphql's own on every transport. */
  readonly validationRules?: readonly ValidationRule[];
  /** Before anything is parsed. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a hook that returns nothing must type-check, as in envelop.
  onAdmit?(state: AdmitState): void | AdmitDone | Promise<void | AdmitDone>;
  /** After parsing and validation, before anything runs. */
  onOperation?(ctx: ApiContext, op: OperationInfo): void | Promise<void>;
}
