#!/usr/bin/env python3
"""Writes filter-vectors.json: documents, queries and the ids each query
must return, in order, on every backend (DESIGN §2).

The expected ids come from the small reference below, written apart from
the Go code so that the two check each other. Hand-written cases carry
their own expected ids as well, and this script refuses to write the file
if the reference disagrees with them. Run: python3 testdata/gen-filter-vectors.py
"""
import itertools, json, os, random

MISSING = object()

def lookup(doc, path):
    cur = doc
    for seg in path.split("."):
        if not isinstance(cur, dict) or seg not in cur:
            return MISSING
        cur = cur[seg]
    return cur

def jtype(v):
    if v is MISSING: return "missing"
    if v is None: return "null"
    if isinstance(v, bool): return "bool"
    if isinstance(v, (int, float)): return "number"
    if isinstance(v, str): return "string"
    if isinstance(v, list): return "array"
    return "object"

def scalar_eq(a, b):
    ta, tb = jtype(a), jtype(b)
    return ta == tb and ta in ("null", "bool", "number", "string") and a == b

def eq(want, v):
    if want is None:
        return v is MISSING or v is None
    return v is not MISSING and scalar_eq(want, v)

def cp(s):  # code-point order
    return [ord(c) for c in s]

def cmp_same(v, w):
    tv, tw = jtype(v), jtype(w)
    if tv != tw or tv not in ("number", "string"):
        return None
    if tv == "string":
        v, w = cp(v), cp(w)
    return (v > w) - (v < w)

def match(f, doc):
    for k, val in f.items():
        if k == "$and":
            if not all(match(c, doc) for c in val): return False
        elif k == "$or":
            if not any(match(c, doc) for c in val): return False
        elif k == "$not":
            if match(val, doc): return False
        else:
            v = lookup(doc, k)
            if isinstance(val, dict):
                for op, arg in val.items():
                    if not op_match(op, arg, v): return False
            elif not eq(val, v):
                return False
    return True

def op_match(op, arg, v):
    if op == "$eq": return eq(arg, v)
    if op == "$ne": return not eq(arg, v)
    if op == "$in": return any(eq(a, v) for a in arg)
    if op == "$nin": return not any(eq(a, v) for a in arg)
    if op == "$exists": return (v is not MISSING) == arg
    if op == "$contains": return isinstance(v, list) and any(scalar_eq(arg, e) if arg is not None else e is None for e in v)
    if op == "$startsWith": return isinstance(v, str) and v.startswith(arg)
    c = cmp_same(v, arg)
    if c is None: return False
    return {"$gt": c > 0, "$gte": c >= 0, "$lt": c < 0, "$lte": c <= 0}[op]

RANK = {"missing": 0, "null": 1, "number": 2, "string": 3, "array": 6, "object": 6}

def rank(v):
    t = jtype(v)
    if t == "bool": return 5 if v else 4
    return RANK[t]

def sort_key(doc, sort):
    key = []
    for path, direction in sort:
        v = lookup(doc, path)
        r = rank(v)
        inner = v if r == 2 else cp(v) if r == 3 else 0
        key.append((r, inner, direction))
    return key

def run(docs, q):
    out = [d for d in docs if match(q.get("filter") or {}, d)]
    sort = list((q.get("sort") or {}).items())
    import functools
    def compare(a, b):
        for (ra, ia, d), (rb, ib, _) in zip(sort_key(a, sort), sort_key(b, sort)):
            c = (ra > rb) - (ra < rb) or (ia > ib) - (ia < ib)
            if d == "desc": c = -c
            if c: return c
        return (a["id"] > b["id"]) - (a["id"] < b["id"])
    out.sort(key=functools.cmp_to_key(compare))
    off = q.get("offset", 0)
    out = out[off:]
    if "limit" in q: out = out[:q["limit"]]
    return [d["id"] for d in out]

# ---------------------------------------------------------------- datasets
mixed = [
    {"id": "m00"},
    {"id": "m01", "v": None},
    {"id": "m02", "v": 0},
    {"id": "m03", "v": -1},
    {"id": "m04", "v": 1},
    {"id": "m05", "v": 1.5},
    {"id": "m06", "v": 2},
    {"id": "m07", "v": 10},
    {"id": "m08", "v": -0.25},
    {"id": "m09", "v": 1e15},
    {"id": "m10", "v": -1e300},
    {"id": "m11", "v": 9007199254740992},
    {"id": "m12", "v": ""},
    {"id": "m13", "v": "1"},
    {"id": "m14", "v": "10"},
    {"id": "m15", "v": "2"},
    {"id": "m16", "v": "a"},
    {"id": "m17", "v": "B"},
    {"id": "m18", "v": "b"},
    {"id": "m19", "v": "ab"},
    {"id": "m20", "v": "é"},
    {"id": "m21", "v": "z"},
    {"id": "m22", "v": "ｚ"},
    {"id": "m23", "v": "😀"},
    {"id": "m24", "v": "Zebra"},
    {"id": "m25", "v": True},
    {"id": "m26", "v": False},
    {"id": "m27", "v": [1, 2]},
    {"id": "m28", "v": {"x": 1}},
    {"id": "m29", "v": []},
    {"id": "m30", "v": "null"},
    {"id": "m31", "v": "true"},
    {"id": "m32", "v": 0.1},
    {"id": "m33", "v": "e\u0301"},
]

people = [
    {"id": "p01", "name": "Alice", "age": 31, "tags": ["admin", "dev"], "addr": {"city": "Paris", "geo": {"lat": 48.85}}, "active": True, "score": 9.5},
    {"id": "p02", "name": "bob", "age": 25, "tags": ["dev"], "addr": {"city": "Berlin", "geo": {"lat": 52.52}}, "active": False, "score": 7},
    {"id": "p03", "name": "Álvaro", "age": 40, "tags": [], "addr": {"city": "Madrid"}, "active": True, "score": None},
    {"id": "p04", "name": "Chloé", "age": None, "tags": ["ops", 1, None], "addr": None, "active": True},
    {"id": "p05", "name": "dave", "tags": "dev", "addr": {"city": "paris"}, "active": None, "score": 7.0},
    {"id": "p06", "name": "Eve", "age": 25, "tags": ["dev", "sec"], "addr": {"city": "Paris", "geo": {"lat": "48.85"}}, "score": -3},
    {"id": "p07", "name": "alice", "age": 31.5, "tags": [["dev"]], "addr": {"geo": {"lat": 0}}, "active": "true", "score": 1e9},
    {"id": "p08", "name": "Zoë", "age": "31", "tags": ["DEV"], "addr": {"city": "Zürich", "geo": None}, "active": False, "score": 0},
    {"id": "p09", "name": "", "age": 0, "addr": {"city": ""}, "score": -0.5},
    {"id": "p10", "name": "Al", "age": 99, "tags": ["admin"], "addr": {"city": "Berlin", "geo": {"lat": 52.52, "lng": 13.4}}, "active": True, "score": 7},
    {"id": "p11", "name": "al-ice", "age": 18, "tags": [True, False], "addr": {"city": "Paris"}, "active": True, "score": "7"},
    {"id": "p12", "name": "😀 smile", "age": 5, "tags": ["😀"], "addr": {"city": "Tōkyō"}, "active": False, "score": 100},
]

# Paths reach into objects only: a segment that looks like an index is an
# object key, and an array on the way makes the path missing (issue 13).
arrays = [
    {"id": "a1", "t": ["x", "y", "z"]},
    {"id": "a2", "t": {"0": "x", "1": "y", "-1": "z"}},
    {"id": "a3", "t": [["x"], ["z"]]},
    {"id": "a4", "t": "xyz"},
    {"id": "a5"},
    {"id": "a6", "t": [{"a": 1}, {"a": 2}]},
    {"id": "a7", "t": {"a": 1, "0": {"a": 2}}},
    {"id": "a8", "t": [0, 1], "n": [10]},
]

DATASETS = {"mixed": mixed, "people": people, "arrays": arrays}

vectors = []

def add(name, dataset, query, expect=None):
    got = run(DATASETS[dataset], query)
    if expect is not None and got != expect:
        raise SystemExit(f"hand case {name!r}: reference gives {got}, hand expectation {expect}")
    vectors.append({"name": name, "dataset": dataset, "query": query, "expect": got})

def bad(name, query):
    vectors.append({"name": name, "dataset": "people", "query": query, "error": "invalid_argument"})

# ---------------------------------------------------------- hand-written
add("equality string is case-sensitive", "people", {"filter": {"name": "alice"}}, ["p07"])
add("equality number matches int and float forms", "people", {"filter": {"score": 7}}, ["p02", "p05", "p10"])
add("number never equals its string", "people", {"filter": {"age": 31}}, ["p01"])
add("string never equals its number", "people", {"filter": {"age": "31"}}, ["p08"])
add("null matches null and missing", "people", {"filter": {"age": None}}, ["p04", "p05"])
add("$ne null means present and not null", "people", {"filter": {"age": {"$ne": None}}}, ["p01", "p02", "p03", "p06", "p07", "p08", "p09", "p10", "p11", "p12"])
add("$exists true includes null", "people", {"filter": {"score": {"$exists": True}}}, ["p01", "p02", "p03", "p05", "p06", "p07", "p08", "p09", "p10", "p11", "p12"])
add("$exists false", "people", {"filter": {"score": {"$exists": False}}}, ["p04"])
add("$gt never crosses types", "people", {"filter": {"age": {"$gt": 30}}}, ["p01", "p03", "p07", "p10"])
add("$gt string compares strings only", "people", {"filter": {"age": {"$gt": "3"}}}, ["p08"])
add("$ne keeps missing and other types", "people", {"filter": {"score": {"$ne": 7}}}, ["p01", "p03", "p04", "p06", "p07", "p08", "p09", "p11", "p12"])
add("nested path", "people", {"filter": {"addr.city": "Paris"}}, ["p01", "p06", "p11"])
add("deep nested number", "people", {"filter": {"addr.geo.lat": 52.52}}, ["p02", "p10"])
add("nested path through null is missing", "people", {"filter": {"addr.geo.lat": None}}, ["p03", "p04", "p05", "p08", "p09", "p11", "p12"])
add("$contains string", "people", {"filter": {"tags": {"$contains": "dev"}}}, ["p01", "p02", "p06"])
add("$contains is type-strict and needs an array", "people", {"filter": {"tags": {"$contains": 1}}}, ["p04"])
add("$contains null", "people", {"filter": {"tags": {"$contains": None}}}, ["p04"])
add("$contains true", "people", {"filter": {"tags": {"$contains": True}}}, ["p11"])
add("$startsWith is case-sensitive", "people", {"filter": {"name": {"$startsWith": "Al"}}}, ["p01", "p10"])
add("$startsWith empty prefix matches every string", "people", {"filter": {"name": {"$startsWith": ""}}}, [f"p{i:02d}" for i in range(1, 13)])
add("$startsWith non-ASCII", "people", {"filter": {"name": {"$startsWith": "😀"}}}, ["p12"])
add("$in mixes types strictly", "people", {"filter": {"age": {"$in": [25, "31", None]}}}, ["p02", "p04", "p05", "p06", "p08"])
add("$nin", "people", {"filter": {"age": {"$nin": [25, 31, None]}}}, ["p03", "p07", "p08", "p09", "p10", "p11", "p12"])
add("$in empty matches nothing", "people", {"filter": {"age": {"$in": []}}}, [])
add("$nin empty matches everything", "people", {"filter": {"age": {"$nin": []}}}, [f"p{i:02d}" for i in range(1, 13)])
add("$or", "people", {"filter": {"$or": [{"name": "Eve"}, {"age": {"$gte": 40}}]}}, ["p03", "p06", "p10"])
add("$and with two ranges", "people", {"filter": {"$and": [{"age": {"$gte": 18}}, {"age": {"$lt": 31}}]}}, ["p02", "p06", "p11"])
add("$not", "people", {"filter": {"$not": {"active": True}}}, ["p02", "p05", "p06", "p07", "p08", "p09", "p12"])
add("operators on one field are ANDed", "people", {"filter": {"score": {"$gt": 0, "$lte": 9.5}}}, ["p01", "p02", "p05", "p10"])
add("boolean equality is not truthiness", "people", {"filter": {"active": True}}, ["p01", "p03", "p04", "p10", "p11"])
add("sort by name ascending is code-point order", "people", {"sort": {"name": "asc"}},
    ["p09", "p10", "p01", "p04", "p06", "p08", "p11", "p07", "p02", "p05", "p03", "p12"])
add("sort by age mixes types in the fixed order", "people", {"sort": {"age": "asc"}},
    ["p05", "p04", "p09", "p12", "p11", "p02", "p06", "p01", "p07", "p03", "p10", "p08"])
add("sort desc reverses the type order; id tie-break stays ascending", "people", {"sort": {"age": "desc"}},
    ["p08", "p10", "p03", "p07", "p01", "p02", "p06", "p11", "p12", "p09", "p04", "p05"])
add("two sort keys", "people", {"sort": {"score": "desc", "name": "asc"}},
    ["p11", "p07", "p12", "p01", "p10", "p02", "p05", "p08", "p09", "p06", "p03", "p04"])
add("sort key order matters", "people", {"sort": {"name": "asc", "score": "desc"}},
    ["p09", "p10", "p01", "p04", "p06", "p08", "p11", "p07", "p02", "p05", "p03", "p12"])
add("limit and offset after filter and sort", "people", {"filter": {"active": True}, "sort": {"age": "desc"}, "limit": 2, "offset": 1}, ["p03", "p01"])
add("mixed: $gt 1 never matches the string 2", "mixed", {"filter": {"v": {"$gt": 1}}}, ["m05", "m06", "m07", "m09", "m11"])
add("mixed: strings above 'a' by code point", "mixed", {"filter": {"v": {"$gt": "a"}}}, ["m18", "m19", "m20", "m21", "m22", "m23", "m30", "m31", "m33"])
add("mixed: emoji sorts after fullwidth z (code points, not UTF-16)", "mixed", {"filter": {"v": {"$gt": "ｚ"}}}, ["m23"])
add("mixed: full sort", "mixed", {"sort": {"v": "asc"}},
    ["m00", "m01", "m10", "m03", "m08", "m02", "m32", "m04", "m05", "m06", "m07", "m09", "m11",
     "m12", "m13", "m14", "m15", "m17", "m24", "m16", "m19", "m18", "m33", "m30", "m31", "m21", "m20", "m22", "m23",
     "m26", "m25", "m27", "m28", "m29"])

add("arrays: a numeric segment is an object key, never an index", "arrays", {"filter": {"t.0": "x"}}, ["a2"])
add("arrays: a negative segment is an object key", "arrays", {"filter": {"t.-1": "z"}}, ["a2"])
add("arrays: a path through an array is missing", "arrays", {"filter": {"t.0": {"$exists": True}}}, ["a2", "a7"])
add("arrays: missing through an array matches null", "arrays", {"filter": {"t.1": None}}, ["a1", "a3", "a4", "a5", "a6", "a7", "a8"])
add("arrays: $ne through an array", "arrays", {"filter": {"t.0": {"$ne": "x"}}}, ["a1", "a3", "a4", "a5", "a6", "a7", "a8"])
add("arrays: nested key under a numeric key", "arrays", {"filter": {"t.0.a": 2}}, ["a7"])
add("arrays: no element's field through an array", "arrays", {"filter": {"t.a": {"$gte": 1}}}, ["a7"])
add("arrays: $in through an array", "arrays", {"filter": {"t.0": {"$in": ["x", 0]}}}, ["a2"])
add("arrays: $contains needs the array itself", "arrays", {"filter": {"t.0": {"$contains": "x"}}}, [])
add("arrays: range through an array", "arrays", {"filter": {"n.0": {"$gt": 1}}}, [])
add("arrays: $startsWith through an array", "arrays", {"filter": {"t.0": {"$startsWith": "x"}}}, ["a2"])
add("arrays: sort on a numeric segment ascending", "arrays", {"sort": {"t.0": "asc"}},
    ["a1", "a3", "a4", "a5", "a6", "a8", "a2", "a7"])
add("arrays: sort on a numeric segment descending", "arrays", {"sort": {"t.0": "desc"}},
    ["a7", "a2", "a1", "a3", "a4", "a5", "a6", "a8"])
add("arrays: sort on a negative segment", "arrays", {"sort": {"t.-1": "desc", "t.1": "asc"}},
    ["a2", "a1", "a3", "a4", "a5", "a6", "a7", "a8"])

# --------------------------------------------------------- generated
# Every comparison operator against a spread of operands of every type, on
# both datasets and several paths.
operands = [None, True, False, 0, 1, -1, 1.5, 2, 10, -0.25, 1e15, 9007199254740992, 0.1,
            "", "1", "10", "2", "a", "B", "b", "ab", "é", "z", "ｚ", "😀", "Zebra", "null", "true", "e\u0301"]
for op in ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]:
    for arg in operands:
        if op in ("$gt", "$gte", "$lt", "$lte") and not (isinstance(arg, (int, float)) and not isinstance(arg, bool) or isinstance(arg, str)):
            continue
        add(f"mixed: v {op} {json.dumps(arg, ensure_ascii=False)}", "mixed", {"filter": {"v": {op: arg}}})
for arg in operands:
    add(f"mixed: v = {json.dumps(arg, ensure_ascii=False)} (implicit)", "mixed", {"filter": {"v": arg}})
for path in ["name", "age", "score", "addr.city", "addr.geo.lat", "active", "tags", "addr"]:
    for direction in ["asc", "desc"]:
        add(f"people: sort {path} {direction}", "people", {"sort": {path: direction}})
for path in ["age", "score", "addr.geo.lat", "name"]:
    for arg in [None, 0, 7, 25, 31, "31", "Paris", True]:
        for op in ["$eq", "$ne", "$in", "$nin"]:
            a = [arg, "x"] if op in ("$in", "$nin") else arg
            add(f"people: {path} {op} {json.dumps(a, ensure_ascii=False)}", "people", {"filter": {path: {op: a}}})
for path in ["tags", "name", "addr.city"]:
    for arg in ["dev", "DEV", "admin", 1, None, True, "😀", "Paris"]:
        add(f"people: {path} $contains {json.dumps(arg, ensure_ascii=False)}", "people", {"filter": {path: {"$contains": arg}}})
for path in ["name", "addr.city", "age"]:
    for prefix in ["", "A", "a", "al", "Al", "P", "p", "Z", "é", "😀", "Tō"]:
        add(f"people: {path} $startsWith {prefix!r}", "people", {"filter": {path: {"$startsWith": prefix}}})
for path in ["t.0", "t.1", "t.-1", "t.a", "t.0.a", "n.0", "t"]:
    for op, arg in [("$eq", "x"), ("$eq", 0), ("$eq", None), ("$ne", "y"), ("$exists", True), ("$exists", False),
                    ("$gte", 0), ("$lt", "z"), ("$in", ["x", "y", 1]), ("$nin", ["z", 2])]:
        add(f"arrays: {path} {op} {json.dumps(arg)}", "arrays", {"filter": {path: {op: arg}}})
    for direction in ["asc", "desc"]:
        add(f"arrays: sort {path} {direction}", "arrays", {"sort": {path: direction}})
rng = random.Random(7)
paths = ["age", "score", "name", "active", "addr.city", "addr.geo.lat", "tags", "nope"]
def rand_leaf():
    p = rng.choice(paths)
    op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains", "$startsWith"])
    if op in ("$gt", "$gte", "$lt", "$lte"):
        arg = rng.choice([0, 7, 25, 31, 48.85, "31", "Paris", "a", "M"])
    elif op in ("$in", "$nin"):
        arg = rng.sample([None, 25, 31, 7, "31", "Paris", True, False, "dev"], rng.randint(0, 3))
    elif op == "$exists":
        arg = rng.choice([True, False])
    elif op == "$startsWith":
        arg = rng.choice(["", "A", "P", "a", "d", "Z"])
    else:
        arg = rng.choice([None, 25, 31, 7, "31", "Paris", True, False, "dev"])
    return {p: {op: arg}}
def rand_filter(depth=0):
    r = rng.random()
    if depth < 2 and r < 0.25:
        return {rng.choice(["$and", "$or"]): [rand_filter(depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and r < 0.35:
        return {"$not": rand_filter(depth + 1)}
    return rand_leaf()
for i in range(120):
    q = {"filter": rand_filter()}
    if rng.random() < 0.6:
        keys = rng.sample(paths, rng.randint(1, 3))
        q["sort"] = {k: rng.choice(["asc", "desc"]) for k in keys}
    if rng.random() < 0.3:
        q["limit"] = rng.randint(1, 5)
        if rng.random() < 0.5:
            q["offset"] = rng.randint(0, 6)
    add(f"people: random {i}", "people", q)

# ----------------------------------------------------------- invalid
bad("unknown operator", {"filter": {"age": {"$regex": "a"}}})
bad("unknown top-level operator", {"filter": {"$where": "1"}})
bad("path with a space", {"filter": {"a b": 1}})
bad("path with a quote", {"filter": {"a'b": 1}})
bad("path with a semicolon", {"filter": {"a;DROP TABLE x": 1}})
bad("path with brackets", {"filter": {"a[0]": 1}})
bad("path with an empty segment", {"filter": {"a..b": 1}})
bad("path with a trailing dot", {"filter": {"a.": 1}})
bad("path too deep", {"filter": {".".join(["a"] * 17): 1}})
bad("equality with an object", {"filter": {"age": {"x": 1}}})
bad("equality with an array", {"filter": {"tags": ["dev"]}})
bad("mixed operator object", {"filter": {"age": {"$gt": 1, "x": 2}}})
bad("empty operator object", {"filter": {"age": {}}})
bad("$gt with null", {"filter": {"age": {"$gt": None}}})
bad("$gt with a boolean", {"filter": {"age": {"$gt": True}}})
bad("$lt with an array", {"filter": {"age": {"$lt": [1]}}})
bad("$in with a scalar", {"filter": {"age": {"$in": 25}}})
bad("$in with an object inside", {"filter": {"age": {"$in": [{"a": 1}]}}})
bad("$exists with a number", {"filter": {"age": {"$exists": 1}}})
bad("$startsWith with a number", {"filter": {"name": {"$startsWith": 1}}})
bad("$contains with an array", {"filter": {"tags": {"$contains": ["dev"]}}})
bad("$and with an object", {"filter": {"$and": {"a": 1}}})
bad("$and empty", {"filter": {"$and": []}})
bad("$or with a scalar inside", {"filter": {"$or": [1]}})
bad("$not with an array", {"filter": {"$not": [{"a": 1}]}})
bad("filter is an array", {"filter": [{"a": 1}]})
bad("filter is a string", {"filter": "age > 1"})
bad("sort direction", {"sort": {"age": "ascending"}})
bad("sort direction number", {"sort": {"age": 1}})
bad("sort bad path", {"sort": {"a;b": "asc"}})
bad("sort is an array", {"sort": ["age"]})
bad("negative limit", {"limit": -1})
bad("zero limit", {"limit": 0})
bad("fractional limit", {"limit": 1.5})
bad("huge limit", {"limit": 1e12})
bad("string limit", {"limit": "10"})
bad("negative offset", {"offset": -1})
bad("fractional offset", {"offset": 0.5})
bad("unknown query key", {"filters": {}})

out = {
    "about": "Shared filter/sort vectors (DESIGN §2). Generated by gen-filter-vectors.py; do not edit by hand.",
    "datasets": DATASETS,
    "vectors": vectors,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "filter-vectors.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"{len(vectors)} vectors written to {path}")
