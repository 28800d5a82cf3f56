import type { DottedPath, Filter, Page, PageOptions, QueryOptions, Scalar, Sort, SortDirection, Update } from "./types.js";

/** Comparison operators of the query builder and the filter operator each compiles to. */
const OPS = {
  "=": "$eq",
  "!=": "$ne",
  ">": "$gt",
  ">=": "$gte",
  "<": "$lt",
  "<=": "$lte",
  in: "$in",
  "not in": "$nin",
  contains: "$contains",
  startsWith: "$startsWith",
  exists: "$exists",
} as const;

export type Operator = keyof typeof OPS;

type Elem<V> = V extends ReadonlyArray<infer E> ? E : never;

/** The operand an operator takes for a field of type V. */
export type Operand<V, O extends Operator> = O extends "=" | "!="
  ? Extract<V, Scalar> | null
  : O extends ">" | ">=" | "<" | "<="
    ? Extract<V, string | number>
    : O extends "in" | "not in"
      ? ReadonlyArray<Extract<V, Scalar> | null>
      : O extends "contains"
        ? Extract<Elem<V>, Scalar>
        : O extends "startsWith"
          ? Extract<V, string> extends never ? never : string
          : O extends "exists"
            ? boolean
            : never;

/** Finds and counts, as a repository does. */
export interface QueryTarget<T extends { id: string }> {
  findMany(options?: QueryOptions<T>): Promise<T[]>;
  count(filter?: Filter<T>): Promise<number>;
  findPage?(options?: PageOptions<T>): Promise<Page<T>>;
  updateMany?(filter: Filter<T>, update: Update<T>): Promise<{ matched: number; modified: number }>;
  deleteMany?(filter: Filter<T>): Promise<number>;
}

/**
 * A typed query: `repo.query().where("status", "=", "active").orderBy("n", "desc").limit(10).find()`.
 * Field names and operand types are checked against T; it compiles to the
 * same filter JSON as findMany's options, so every backend supports it.
 * Each call returns a new query; a query can be reused.
 */
export class Query<T extends { id: string }> {
  private constructor(
    private readonly target: QueryTarget<T>,
    private readonly conds: ReadonlyArray<Filter<T>>,
    private readonly sorts: ReadonlyArray<[string, SortDirection]>,
    private readonly lim: number | undefined,
    private readonly off: number | undefined,
  ) {}

  static of<T extends { id: string }>(target: QueryTarget<T>): Query<T> {
    return new Query<T>(target, [], [], undefined, undefined);
  }

  /** Adds a condition; several are ANDed. */
  where<K extends keyof T & string, O extends Operator>(field: K, op: O, value: Operand<T[K], O>): Query<T>;
  /** A condition on a dotted path, whose type TypeScript cannot follow. */
  where<O extends Operator>(path: DottedPath, op: O, value: Operand<Scalar | Scalar[], O>): Query<T>;
  where(field: string, op: Operator, value: unknown): Query<T> {
    const cond = { [field]: { [OPS[op]]: value } } as Filter<T>;
    return new Query<T>(this.target, [...this.conds, cond], this.sorts, this.lim, this.off);
  }

  /** Sorts by a field; later calls break ties of earlier ones (then id). */
  orderBy(field: (keyof T & string) | DottedPath, direction: SortDirection = "asc"): Query<T> {
    return new Query<T>(this.target, this.conds, [...this.sorts, [field, direction]], this.lim, this.off);
  }

  limit(n: number): Query<T> {
    return new Query<T>(this.target, this.conds, this.sorts, n, this.off);
  }

  offset(n: number): Query<T> {
    return new Query<T>(this.target, this.conds, this.sorts, this.lim, n);
  }

  /** The filter this query sends. */
  filter(): Filter<T> {
    const [only, ...more] = this.conds;
    if (!only) return {};
    if (more.length === 0) return only;
    return { $and: [...this.conds] } as Filter<T>;
  }

  /** The findMany options this query sends. */
  options(): QueryOptions<T> {
    const o: QueryOptions<T> = { filter: this.filter() };
    if (this.sorts.length) o.sort = Object.fromEntries(this.sorts) as Sort<T>;
    if (this.lim !== undefined) o.limit = this.lim;
    if (this.off !== undefined) o.offset = this.off;
    return o;
  }

  find(): Promise<T[]> {
    return this.target.findMany(this.options());
  }

  count(): Promise<number> {
    return this.target.count(this.filter());
  }

  /** A keyset page of this query (its limit is the page size); pass the previous page's next. */
  findPage(after?: string | null): Promise<Page<T>> {
    if (!this.target.findPage) throw new TypeError("this repository has no findPage");
    const { offset: _offset, ...o } = this.options();
    return this.target.findPage(after ? { ...o, after } : o);
  }

  /** Applies update to every record this query matches (its sort and limit do not apply). */
  updateMany(update: Update<T>): Promise<{ matched: number; modified: number }> {
    if (!this.target.updateMany) throw new TypeError("this repository has no updateMany");
    return this.target.updateMany(this.filter(), update);
  }

  /** Deletes every record this query matches (its sort and limit do not apply). */
  deleteMany(): Promise<number> {
    if (!this.target.deleteMany) throw new TypeError("this repository has no deleteMany");
    return this.target.deleteMany(this.filter());
  }
}
