/**
 * Builds the executable schema from schema.graphql (SDL first) and the resolver map. graphql-js'
 * buildSchema gives a schema without behaviour; resolvers, subscribe functions and scalar codecs
 * are attached here, and a resolver for a field that the SDL does not have is a startup error
 * (a renamed field must not silently stop resolving).
 */
import { readFileSync } from 'node:fs';
import {
  buildSchema,
  type GraphQLFieldResolver,
  GraphQLObjectType,
  GraphQLScalarType,
  type GraphQLSchema,
  Kind,
  type ValueNode,
} from 'graphql';
import { AppError } from '../shared/errors.ts';
import { unstorableDate } from '../shared/storable.ts';

export const SCHEMA_PATH = new URL('../../schema.graphql', import.meta.url);
export const typeDefs: string = readFileSync(SCHEMA_PATH, 'utf8');

// biome-ignore lint/suspicious/noExplicitAny: resolver maps are heterogeneous by nature.
type AnyResolver = GraphQLFieldResolver<any, any, any>;
export type FieldResolvers = Record<string, AnyResolver | { subscribe: AnyResolver; resolve?: AnyResolver }>;
export type ResolverMap = Record<string, FieldResolvers>;

function parseDate(value: unknown): Date {
  const d =
    typeof value === 'string' && /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)
      ? new Date(value)
      : new Date(Number.NaN);
  if (Number.isNaN(d.getTime()))
    throw new AppError(
      'BAD_USER_INPUT',
      `${JSON.stringify(value)} is not an ISO-8601 date-time such as 2026-01-31T12:00:00Z`,
    );
  const why = unstorableDate(d);
  if (why) throw new AppError('BAD_USER_INPUT', `${JSON.stringify(value)} ${why}`);
  return d;
}

function literalValue(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.ENUM:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map(literalValue);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literalValue(f.value)]));
    default:
      throw new AppError('BAD_USER_INPUT', 'JSON literals cannot contain variables');
  }
}

const scalars: Record<string, Partial<GraphQLScalarType>> = {
  DateTime: {
    serialize: (v) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString()),
    parseValue: parseDate,
    parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
  },
  JSON: { serialize: (v) => v, parseValue: (v) => v, parseLiteral: literalValue },
};

export function buildExecutableSchema(resolvers: ResolverMap): GraphQLSchema {
  const schema = buildSchema(typeDefs);
  for (const [name, codec] of Object.entries(scalars)) {
    const type = schema.getType(name);
    if (!(type instanceof GraphQLScalarType)) throw new Error(`schema.graphql has no scalar ${name}`);
    Object.assign(type, codec);
  }
  for (const [typeName, fields] of Object.entries(resolvers)) {
    const type = schema.getType(typeName);
    if (!(type instanceof GraphQLObjectType))
      throw new Error(`resolvers for ${typeName}, which schema.graphql does not define as an object type`);
    const defined = type.getFields();
    for (const [fieldName, r] of Object.entries(fields)) {
      const field = defined[fieldName];
      if (!field)
        throw new Error(`resolver for ${typeName}.${fieldName}, which schema.graphql does not define`);
      if (typeof r === 'function') field.resolve = r;
      else {
        field.subscribe = r.subscribe;
        if (r.resolve) field.resolve = r.resolve;
      }
    }
  }
  return schema;
}
