/**
 * Query depth and cost limits as graphql validation rules, shared by every transport, so a
 * deeply nested or huge query is refused before any resolver runs (nothing is read or written).
 *
 * Cost: every field costs 1 times the product of the `first` arguments of the list fields above
 * it (a variable `first` counts as the schema maximum, since validation cannot see variable
 * values). Fragments are expanded; a fragment cycle is left to graphql's own NoFragmentCycles rule.
 */
import {
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  parse,
  type SelectionSetNode,
  specifiedRules,
  type ValidationContext,
  type ValidationRule,
  validate,
} from 'graphql';

/**
 * The API's own deepest query is 5 levels (jobs > edges > node > images > url); graphql's
 * standard introspection query reaches 15 (nested ofType), and introspection types are recursive
 * (__Type.fields.type.fields ...), so the limit must hold for them too.
 */
export const DEFAULT_MAX_DEPTH = 16;
export const DEFAULT_MAX_COST = 5000;
/** Upper bound of `first` on connections (resolvers enforce it too). */
export const MAX_PAGE_SIZE = 100;

type Walk = { depth: number; cost: number };

function walk(
  set: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  depth: number,
  multiplier: number,
  seen: Set<string>,
  out: Walk,
): void {
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      out.cost += multiplier;
      if (!sel.selectionSet) {
        out.depth = Math.max(out.depth, depth);
        continue;
      }
      const first = sel.arguments?.find((a) => a.name.value === 'first');
      let factor = 1;
      if (first)
        factor = first.value.kind === Kind.INT ? Math.max(1, Number(first.value.value)) : MAX_PAGE_SIZE;
      walk(sel.selectionSet, fragments, depth + 1, multiplier * factor, seen, out);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      walk(sel.selectionSet, fragments, depth, multiplier, seen, out);
    } else {
      const name = sel.name.value;
      const frag = fragments.get(name);
      if (!frag || seen.has(name)) continue;
      seen.add(name);
      walk(frag.selectionSet, fragments, depth, multiplier, seen, out);
      seen.delete(name);
    }
  }
}

/** Depth and cost of each operation in `context`'s document. */
export function limitsRule(maxDepth = DEFAULT_MAX_DEPTH, maxCost = DEFAULT_MAX_COST): ValidationRule {
  return (context: ValidationContext): ASTVisitor => {
    const doc = context.getDocument();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    return {
      OperationDefinition(op) {
        const out: Walk = { depth: 0, cost: 0 };
        walk(op.selectionSet, fragments, 1, 1, new Set(), out);
        const name = op.name?.value ?? 'anonymous operation';
        if (out.depth > maxDepth) {
          context.reportError(
            new GraphQLError(
              `${name} is nested ${out.depth} levels deep; the limit is ${maxDepth}. Flatten the query.`,
              { nodes: [op], extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } },
            ),
          );
        }
        if (out.cost > maxCost) {
          context.reportError(
            new GraphQLError(
              `${name} costs ${out.cost}; the limit is ${maxCost}. Ask for fewer items (smaller \`first\`) or fewer fields.`,
              {
                nodes: [op],
                extensions: { code: 'GRAPHQL_VALIDATION_FAILED', cost: out.cost },
              },
            ),
          );
        }
      },
    };
  };
}

/** graphql's standard rules plus ours, for transports that take a full rule list. */
export const validationRules = (): readonly ValidationRule[] => [...specifiedRules, limitsRule()];

/**
 * Parse + validate with a cache of documents that passed, keyed by the query text: many clients
 * subscribe with the same operation (1,000 subscribers of one job), and the rules depend only on
 * the schema and the text, not on variables. Failing documents are not cached (their errors are
 * recomputed). Bounded: the oldest entry is dropped. Throws graphql's syntax error from `parse`.
 */
export function documentCache(schema: GraphQLSchema, max = 500) {
  const rules = validationRules();
  const valid = new Map<string, DocumentNode>();
  return (query: string): { document: DocumentNode; errors: readonly GraphQLError[] } => {
    const hit = valid.get(query);
    if (hit) return { document: hit, errors: [] };
    const document = parse(query);
    const errors = validate(schema, document, rules);
    if (errors.length === 0) {
      valid.set(query, document);
      if (valid.size > max) {
        const oldest = valid.keys().next().value;
        if (oldest !== undefined) valid.delete(oldest);
      }
    }
    return { document, errors };
  };
}
