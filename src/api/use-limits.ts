/**
 * Query depth, cost and database-field limits as graphql validation rules, run on every
 * transport (the `use-limits` plugin hands them to the admission path), so a deeply nested, huge
 * or read-amplifying query is refused before any resolver runs (nothing is read or written).
 *
 * Cost: every field costs 1 times the product of the `first` arguments of the list fields above
 * it (a variable `first` counts as the schema maximum, since validation cannot see variable
 * values). Database fields: fields marked `@db` in schema.graphql count the same way, against a
 * much smaller limit, because each resolution is a database round trip (1,000 aliased `job`
 * fields took over 5 s). Fragments are expanded; a fragment cycle is left to graphql's own
 * NoFragmentCycles rule.
 */
import {
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  getNamedType,
  isInterfaceType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  parse,
  type SelectionSetNode,
  specifiedRules,
  type ValidationContext,
  type ValidationRule,
  validate,
} from 'graphql';
import { BoundedMap } from '../shared/bounded-map.ts';
import type { ApiPlugin } from './plugin-types.ts';

/**
 * The API's own deepest query is 5 levels (jobs > edges > node > images > url); graphql's
 * standard introspection query reaches 15 (nested ofType), and introspection types are recursive
 * (__Type.fields.type.fields ...), so the limit must hold for them too.
 */
export const DEFAULT_MAX_DEPTH = 16;
export const DEFAULT_MAX_COST = 5000;
/** A full page of jobs with their images is 101; a few such in one operation fit. */
export const DEFAULT_MAX_DB_FIELDS = 250;
/** Upper bound of `first` on connections (resolvers enforce it too). */
export const MAX_PAGE_SIZE = 100;

type Walk = { depth: number; cost: number; db: number };
type Env = {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  isDb: (field: GraphQLField<unknown, unknown>) => boolean;
};

/** Whether a field definition carries the `@db` directive in the SDL. */
const dbFields = new WeakMap<GraphQLField<unknown, unknown>, boolean>();
function isDbField(field: GraphQLField<unknown, unknown>): boolean {
  let v = dbFields.get(field);
  if (v === undefined) {
    v = field.astNode?.directives?.some((d) => d.name.value === 'db') ?? false;
    dbFields.set(field, v);
  }
  return v;
}

function fieldsOf(type: GraphQLNamedType | undefined) {
  return type && (isObjectType(type) || isInterfaceType(type)) ? type.getFields() : undefined;
}

function walk(
  set: SelectionSetNode,
  type: GraphQLNamedType | undefined,
  env: Env,
  depth: number,
  multiplier: number,
  seen: Set<string>,
  out: Walk,
): void {
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      out.cost += multiplier;
      const def = fieldsOf(type)?.[sel.name.value];
      if (def && env.isDb(def)) out.db += multiplier;
      if (!sel.selectionSet) {
        out.depth = Math.max(out.depth, depth);
        continue;
      }
      const first = sel.arguments?.find((a) => a.name.value === 'first');
      let factor = 1;
      if (first)
        factor = first.value.kind === Kind.INT ? Math.max(1, Number(first.value.value)) : MAX_PAGE_SIZE;
      const child = def ? getNamedType(def.type) : undefined;
      walk(sel.selectionSet, child, env, depth + 1, multiplier * factor, seen, out);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      const t = sel.typeCondition ? env.schema.getType(sel.typeCondition.name.value) : type;
      walk(sel.selectionSet, t ?? undefined, env, depth, multiplier, seen, out);
    } else {
      const name = sel.name.value;
      const frag = env.fragments.get(name);
      if (!frag || seen.has(name)) continue;
      seen.add(name);
      const t = env.schema.getType(frag.typeCondition.name.value) ?? undefined;
      walk(frag.selectionSet, t, env, depth, multiplier, seen, out);
      seen.delete(name);
    }
  }
}

/** Depth, cost and database fields of each operation in `context`'s document. */
export function limitsRule(
  maxDepth = DEFAULT_MAX_DEPTH,
  maxCost = DEFAULT_MAX_COST,
  maxDbFields = DEFAULT_MAX_DB_FIELDS,
): ValidationRule {
  return (context: ValidationContext): ASTVisitor => {
    const doc = context.getDocument();
    const schema = context.getSchema();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    const env: Env = { schema, fragments, isDb: isDbField };
    const refuse = (op: OperationDefinitionNode, message: string, ext = {}) =>
      context.reportError(
        new GraphQLError(message, { nodes: [op], extensions: { code: 'GRAPHQL_VALIDATION_FAILED', ...ext } }),
      );
    return {
      OperationDefinition(op) {
        const out: Walk = { depth: 0, cost: 0, db: 0 };
        walk(op.selectionSet, schema.getRootType(op.operation) ?? undefined, env, 1, 1, new Set(), out);
        const name = op.name?.value ?? 'anonymous operation';
        if (out.depth > maxDepth)
          refuse(
            op,
            `${name} is nested ${out.depth} levels deep; the limit is ${maxDepth}. Flatten the query.`,
          );
        if (out.cost > maxCost)
          refuse(
            op,
            `${name} costs ${out.cost}; the limit is ${maxCost}. Ask for fewer items (smaller \`first\`) or fewer fields.`,
            { cost: out.cost },
          );
        if (out.db > maxDbFields)
          refuse(
            op,
            `${name} reads the database ${out.db} times (fields like job, jobs, viewer, images); the limit is ${maxDbFields}. Split it into several requests or ask for fewer items.`,
          );
      },
    };
  };
}

/** graphql's standard rules plus ours, for transports that take a full rule list. */
export const validationRules = (): readonly ValidationRule[] => [...specifiedRules, limitsRule()];

/** The plugin: its rules join graphql's own on every transport. */
export function useLimits(): ApiPlugin {
  return { name: 'limits', validationRules: [limitsRule()] };
}

/**
 * Parse + validate with a cache of documents that passed, keyed by the query text: many clients
 * subscribe with the same operation (1,000 subscribers of one job), and the rules depend only on
 * the schema and the text, not on variables. Failing documents are not cached (their errors are
 * recomputed). Bounded: the oldest entry is dropped. Throws graphql's syntax error from `parse`.
 */
export function documentCache(
  schema: GraphQLSchema,
  max = 500,
  rules: readonly ValidationRule[] = validationRules(),
) {
  const valid = new BoundedMap<string, DocumentNode>(max);
  return (query: string): { document: DocumentNode; errors: readonly GraphQLError[] } => {
    const hit = valid.get(query);
    if (hit) return { document: hit, errors: [] };
    const document = parse(query);
    const errors = validate(schema, document, rules);
    if (errors.length === 0) valid.set(query, document);
    return { document, errors };
  };
}
