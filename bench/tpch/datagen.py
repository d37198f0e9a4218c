"""TPC-H data, generated with numpy into Parquet files: the eight tables at a scale factor.

    python bench/tpch/datagen.py [--sf 1] [--out bench/data/tpch-sf1] [--seed 19920101] [--workers 2]

The tables follow the TPC-H specification (revision 3) closely enough for the benchmark's
queries to be as selective as they are there: its schema, keys and cardinalities (lineitem
about 6M rows at scale factor 1), the sparse order keys, customers whose key is a multiple
of three never ordering, lineitem's supplier drawn among the part's four partsupp
suppliers, the price formula, dates between 1992-01-01 and 1998-12-31 with ship, commit
and receipt dates derived from the order date, l_returnflag and l_linestatus decided by
the receipt and ship dates against 1995-06-17, the order status and total price from the
order's lines, and the 5 regions, 25 nations, 5 market segments, priorities, ship modes,
part types and containers of the specification. Money columns (and l_quantity) are DOUBLE
rather than DECIMAL, dates DATE, keys BIGINT. Free text (comments, addresses) is cut from a
pool of words as dbgen does, not from its grammar.

Everything is vectorized (no Python loop per row) and deterministic: each chunk of orders
has its own seed, so chunks are generated in parallel processes and the result is the same
with any number of workers. orders and lineitem are written as several files (one per chunk)
of several row groups each, so a scan splits.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SEED = 19920101
ROW_GROUP = 200_000

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")

REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
#: (n_name, n_regionkey), n_nationkey being the position
NATIONS = (("ALGERIA", 0), ("ARGENTINA", 1), ("BRAZIL", 1), ("CANADA", 1), ("EGYPT", 4), ("ETHIOPIA", 0),
           ("FRANCE", 3), ("GERMANY", 3), ("INDIA", 2), ("INDONESIA", 2), ("IRAN", 4), ("IRAQ", 4), ("JAPAN", 2),
           ("JORDAN", 4), ("KENYA", 0), ("MOROCCO", 0), ("MOZAMBIQUE", 0), ("PERU", 1), ("CHINA", 2),
           ("ROMANIA", 3), ("SAUDI ARABIA", 4), ("VIETNAM", 2), ("RUSSIA", 3), ("UNITED KINGDOM", 3),
           ("UNITED STATES", 1))
SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
PRIORITIES = ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
SHIP_MODES = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")
SHIP_INSTRUCT = ("DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN")
TYPE_WORDS = (("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"),
              ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED"),
              ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER"))
CONTAINER_WORDS = (("SM", "LG", "MED", "JUMBO", "WRAP"), ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"))
COLORS = ("almond antique aquamarine azure beige bisque black blanched blue blush brown burlywood burnished "
          "chartreuse chiffon chocolate coral cornflower cornsilk cream cyan dark deep dim dodger drab firebrick "
          "floral forest frosted gainsboro ghost goldenrod green grey honeydew hot indian ivory khaki lace "
          "lavender lawn lemon light lime linen magenta maroon medium metallic midnight mint misty moccasin "
          "navajo navy olive orange orchid pale papaya peach peru pink plum powder puff purple red rose rosy "
          "royal saddle salmon sandy seashell sienna sky slate smoke snow spring steel tan thistle tomato "
          "turquoise violet wheat white yellow").split()
#: words the comments are made of (the specification's grammar draws on the same kind)
TEXT_WORDS = ("furiously carefully quickly slyly blithely fluffily ironically daringly boldly closely "
              "final regular express special pending unusual ironic bold even silent ruthless quiet "
              "deposits requests packages accounts instructions theodolites foxes ideas pinto beans "
              "platelets asymptotes dependencies excuses frays dugouts sauternes warthogs sheaves "
              "sleep wake are nag haggle cajole use boost affix detect integrate maintain nod was "
              "about above according across after against along alongside among around at atop "
              "the of to among never always sometimes").split()

EPOCH = datetime.date(1970, 1, 1)
START_DATE = (datetime.date(1992, 1, 1) - EPOCH).days
END_DATE = (datetime.date(1998, 12, 31) - EPOCH).days
CURRENT_DATE = (datetime.date(1995, 6, 17) - EPOCH).days  # decides returnflag and linestatus


# --------------------------------------------------------------------------- sizes and seeds
def cardinalities(sf: float) -> dict[str, int]:
    """Rows of each base table at scale factor ``sf`` (lineitem varies around 4 x orders)."""
    def n(base: int) -> int:
        return max(1, int(round(base * sf)))
    return {"region": 5, "nation": 25, "supplier": n(10_000), "customer": n(150_000), "part": n(200_000),
            "partsupp": 4 * n(200_000), "orders": n(1_500_000), "clerks": n(1_000)}


def _rng(seed: int, table: str, chunk: int = 0) -> np.random.Generator:
    """An independent stream per (table, chunk): same data whatever runs in which process."""
    return np.random.default_rng([seed, TABLES.index(table), chunk])


# --------------------------------------------------------------------------- column builders
def _pool(seed: int) -> np.ndarray:
    """A few hundred KB of words and spaces (uint8) that free-text columns are cut from."""
    rng = np.random.default_rng([seed, 99])
    words = np.array(TEXT_WORDS, dtype=object)[rng.integers(0, len(TEXT_WORDS), 60_000)]
    return np.frombuffer(" ".join(words).encode("ascii"), dtype=np.uint8)


def _alnum_pool(seed: int) -> np.ndarray:
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,. ", dtype=np.uint8)
    return alphabet[np.random.default_rng([seed, 98]).integers(0, len(alphabet), 200_000)]


def _text(rng: np.random.Generator, pool: np.ndarray, n: int, lo: int, hi: int) -> pa.Array:
    """``n`` strings of ``lo``..``hi`` characters, each a random slice of ``pool``: one gather."""
    lengths = rng.integers(lo, hi + 1, n)
    starts = rng.integers(0, len(pool) - hi, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    data = np.empty(total, dtype=np.uint8)
    for a in range(0, n, 100_000):  # in blocks, so the gather index stays small
        b = min(n, a + 100_000)
        lo_off, hi_off = int(offsets[a]), int(offsets[b])
        gather = np.arange(lo_off, hi_off, dtype=np.int64) + np.repeat(starts[a:b] - offsets[a:b], lengths[a:b])
        data[lo_off:hi_off] = pool[gather]
    if total < 2**31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def _numbered(prefix: str, keys: np.ndarray, width: int = 9) -> pa.Array:
    """``Customer#000000042`` and the like, from integer keys."""
    digits = pc.utf8_lpad(pc.cast(pa.array(keys), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _choice(words: Sequence[str], codes: np.ndarray) -> pa.Array:
    return pc.take(pa.array(list(words), pa.string()), pa.array(codes))


def _phones(rng: np.random.Generator, nationkeys: np.ndarray) -> pa.Array:
    """``CC-LLL-LLL-LLLL`` with the country code nationkey + 10, as the specification says."""
    n = len(nationkeys)
    parts = [pc.cast(pa.array(x), pa.string()) for x in
             (nationkeys + 10, rng.integers(100, 1000, n), rng.integers(100, 1000, n), rng.integers(1000, 10000, n))]
    return pc.binary_join_element_wise(*parts, "-")


def _money(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """Uniform amounts in cents, as doubles with two decimals."""
    return rng.integers(int(round(lo * 100)), int(round(hi * 100)) + 1, n) / 100.0


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.int32()).view(pa.date32())


def retail_price(partkey: np.ndarray) -> np.ndarray:
    """p_retailprice, the specification's formula (also gives l_extendedprice)."""
    return (90_000 + (partkey // 10) % 20_001 + 100 * (partkey % 1_000)) / 100.0


def part_supplier(partkey: np.ndarray, i: np.ndarray, suppliers: int) -> np.ndarray:
    """The ``i``-th (0..3) supplier of a part, the same in partsupp and lineitem."""
    return (partkey + i * (suppliers // 4 + (partkey - 1) // suppliers)) % suppliers + 1


# --------------------------------------------------------------------------- tables
def region(seed: int, pool: np.ndarray) -> pa.Table:
    rng = _rng(seed, "region")
    return pa.table({"r_regionkey": pa.array(np.arange(5), pa.int64()), "r_name": pa.array(list(REGIONS)),
                     "r_comment": _text(rng, pool, 5, 31, 115)})


def nation(seed: int, pool: np.ndarray) -> pa.Table:
    rng = _rng(seed, "nation")
    return pa.table({"n_nationkey": pa.array(np.arange(25), pa.int64()),
                     "n_name": pa.array([name for name, _ in NATIONS]),
                     "n_regionkey": pa.array([r for _, r in NATIONS], pa.int64()),
                     "n_comment": _text(rng, pool, 25, 31, 114)})


def supplier(seed: int, sizes: dict[str, int], pool: np.ndarray, alnum: np.ndarray) -> pa.Table:
    rng = _rng(seed, "supplier")
    n = sizes["supplier"]
    keys = np.arange(1, n + 1)
    nations = rng.integers(0, 25, n)
    return pa.table({"s_suppkey": keys, "s_name": _numbered("Supplier#", keys),
                     "s_address": _text(rng, alnum, n, 10, 40), "s_nationkey": nations,
                     "s_phone": _phones(rng, nations), "s_acctbal": _money(rng, -999.99, 9999.99, n),
                     "s_comment": _text(rng, pool, n, 25, 100)})


def customer(seed: int, sizes: dict[str, int], pool: np.ndarray, alnum: np.ndarray) -> pa.Table:
    rng = _rng(seed, "customer")
    n = sizes["customer"]
    keys = np.arange(1, n + 1)
    nations = rng.integers(0, 25, n)
    return pa.table({"c_custkey": keys, "c_name": _numbered("Customer#", keys),
                     "c_address": _text(rng, alnum, n, 10, 40), "c_nationkey": nations,
                     "c_phone": _phones(rng, nations), "c_acctbal": _money(rng, -999.99, 9999.99, n),
                     "c_mktsegment": _choice(SEGMENTS, rng.integers(0, 5, n)),
                     "c_comment": _text(rng, pool, n, 29, 116)})


def _part_names(rng: np.random.Generator, n: int) -> pa.Array:
    """Five distinct colour words a part, drawn without replacement (a partial argsort)."""
    cols = []
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        cols.append(np.argpartition(rng.random((m, len(COLORS)), dtype=np.float32), 5, axis=1)[:, :5])
    picks = np.concatenate(cols) if cols else np.zeros((0, 5), dtype=np.int64)
    words = [_choice(COLORS, picks[:, j]) for j in range(5)]
    return pc.binary_join_element_wise(*words, " ")


def part(seed: int, sizes: dict[str, int], pool: np.ndarray) -> pa.Table:
    rng = _rng(seed, "part")
    n = sizes["part"]
    keys = np.arange(1, n + 1)
    mfgr = rng.integers(1, 6, n)
    brand = mfgr * 10 + rng.integers(1, 6, n)
    types = [f"{a} {b} {c}" for a in TYPE_WORDS[0] for b in TYPE_WORDS[1] for c in TYPE_WORDS[2]]
    containers = [f"{a} {b}" for a in CONTAINER_WORDS[0] for b in CONTAINER_WORDS[1]]
    return pa.table({"p_partkey": keys, "p_name": _part_names(rng, n),
                     "p_mfgr": pc.binary_join_element_wise("Manufacturer#", pc.cast(pa.array(mfgr), pa.string()), ""),
                     "p_brand": pc.binary_join_element_wise("Brand#", pc.cast(pa.array(brand), pa.string()), ""),
                     "p_type": _choice(types, rng.integers(0, len(types), n)),
                     "p_size": pa.array(rng.integers(1, 51, n), pa.int32()),
                     "p_container": _choice(containers, rng.integers(0, len(containers), n)),
                     "p_retailprice": retail_price(keys), "p_comment": _text(rng, pool, n, 5, 22)})


def partsupp(seed: int, sizes: dict[str, int], pool: np.ndarray) -> pa.Table:
    rng = _rng(seed, "partsupp")
    n = sizes["partsupp"]
    partkeys = np.repeat(np.arange(1, sizes["part"] + 1), 4)
    which = np.tile(np.arange(4), sizes["part"])
    return pa.table({"ps_partkey": partkeys, "ps_suppkey": part_supplier(partkeys, which, sizes["supplier"]),
                     "ps_availqty": pa.array(rng.integers(1, 10_000, n), pa.int32()),
                     "ps_supplycost": _money(rng, 1.0, 1000.0, n), "ps_comment": _text(rng, pool, n, 49, 198)})


def orders_and_lineitem(seed: int, sizes: dict[str, int], first: int, count: int, chunk: int,
                        pool: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """Orders ``first`` .. ``first + count - 1`` (0-based) and their lines: they are made
    together because an order's status and total price come from its lines."""
    rng = _rng(seed, "orders", chunk)
    idx = np.arange(first, first + count, dtype=np.int64)
    orderkey = (idx // 8) * 32 + idx % 8 + 1  # sparse keys: 8 used of every 32
    # customers whose key is a multiple of 3 place no order: the m-th other key is m + m // 2 + 1
    customers = sizes["customer"]
    m = rng.integers(0, max(1, customers - customers // 3), count)
    custkey = np.minimum(m + m // 2 + 1, customers)
    orderdate = rng.integers(START_DATE, END_DATE - 151 + 1, count)

    lines = rng.integers(1, 8, count)
    total = int(lines.sum())
    starts = np.zeros(count, dtype=np.int64)
    np.cumsum(lines[:-1], out=starts[1:])
    owner = np.repeat(np.arange(count), lines)
    linenumber = np.arange(total) - starts[owner] + 1
    partkey = rng.integers(1, sizes["part"] + 1, total)
    suppkey = part_supplier(partkey, rng.integers(0, 4, total), sizes["supplier"])
    quantity = rng.integers(1, 51, total).astype(np.float64)
    extended = np.round(quantity * retail_price(partkey), 2)
    discount = rng.integers(0, 11, total) / 100.0
    tax = rng.integers(0, 9, total) / 100.0
    odate = orderdate[owner]
    shipdate = odate + rng.integers(1, 122, total)
    commitdate = odate + rng.integers(30, 91, total)
    receiptdate = shipdate + rng.integers(1, 31, total)
    returned = receiptdate <= CURRENT_DATE
    returnflag = np.where(returned, rng.integers(0, 2, total) * 2, 1)  # R or A when received, else N
    shipped = shipdate <= CURRENT_DATE  # F(inished) lines; later ones are O(pen)

    finished = np.add.reduceat(shipped.astype(np.int64), starts)
    status = np.where(finished == lines, 0, np.where(finished == 0, 1, 2))
    totalprice = np.round(np.add.reduceat(extended * (1 + tax) * (1 - discount), starts), 2)

    orders = pa.table({
        "o_orderkey": orderkey, "o_custkey": custkey, "o_orderstatus": _choice(("F", "O", "P"), status),
        "o_totalprice": totalprice, "o_orderdate": _dates(orderdate),
        "o_orderpriority": _choice(PRIORITIES, rng.integers(0, 5, count)),
        "o_clerk": _numbered("Clerk#", rng.integers(1, sizes["clerks"] + 1, count)),
        "o_shippriority": pa.array(np.zeros(count, dtype=np.int32)), "o_comment": _text(rng, pool, count, 19, 78)})
    lineitem = pa.table({
        "l_orderkey": orderkey[owner], "l_partkey": partkey, "l_suppkey": suppkey,
        "l_linenumber": pa.array(linenumber.astype(np.int32)), "l_quantity": quantity,
        "l_extendedprice": extended, "l_discount": discount, "l_tax": tax,
        "l_returnflag": _choice(("A", "N", "R"), returnflag),
        "l_linestatus": _choice(("O", "F"), shipped.astype(np.int64)),
        "l_shipdate": _dates(shipdate), "l_commitdate": _dates(commitdate), "l_receiptdate": _dates(receiptdate),
        "l_shipinstruct": _choice(SHIP_INSTRUCT, rng.integers(0, 4, total)),
        "l_shipmode": _choice(SHIP_MODES, rng.integers(0, 7, total)), "l_comment": _text(rng, pool, total, 10, 43)})
    return orders, lineitem


# --------------------------------------------------------------------------- writing
def _write(table: pa.Table, out: str, name: str, part_no: int = 0) -> None:
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    pq.write_table(table, os.path.join(directory, f"part-{part_no:05d}.parquet"), row_group_size=ROW_GROUP)


def _order_chunk(args: tuple[int, dict[str, int], int, int, int, str]) -> int:
    """One chunk of orders and lineitem, written as one file of each (runs in a worker)."""
    seed, sizes, first, count, chunk, out = args
    orders, lineitem = orders_and_lineitem(seed, sizes, first, count, chunk, _pool(seed))
    _write(orders, out, "orders", chunk)
    _write(lineitem, out, "lineitem", chunk)
    return lineitem.num_rows


def default_files(sf: float) -> int:
    """Files of orders and of lineitem: 8 at SF1 (about 750k lines each), at least 2."""
    return max(2, int(math.ceil(8 * sf)))


def generate(out: str, sf: float = 1.0, seed: int = DEFAULT_SEED, files: int | None = None,
             workers: int = 1) -> dict[str, str]:
    """Write the eight tables under ``out/<table>/part-NNNNN.parquet`` (replacing what was
    there); returns table name -> directory."""
    sizes = cardinalities(sf)
    files = files or default_files(sf)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    pool, alnum = _pool(seed), _alnum_pool(seed)
    n_orders = sizes["orders"]
    bounds = [n_orders * i // files for i in range(files + 1)]
    jobs = [(seed, sizes, bounds[i], bounds[i + 1] - bounds[i], i, out) for i in range(files)
            if bounds[i + 1] > bounds[i]]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as executor:
            pending = executor.map(_order_chunk, jobs)
            _write_small(out, seed, sizes, pool, alnum)
            list(pending)
    else:
        _write_small(out, seed, sizes, pool, alnum)
        for job in jobs:
            _order_chunk(job)
    return paths(out)


def _write_small(out: str, seed: int, sizes: dict[str, int], pool: np.ndarray, alnum: np.ndarray) -> None:
    _write(region(seed, pool), out, "region")
    _write(nation(seed, pool), out, "nation")
    _write(supplier(seed, sizes, pool, alnum), out, "supplier")
    _write(customer(seed, sizes, pool, alnum), out, "customer")
    _write(part(seed, sizes, pool), out, "part")
    _write(partsupp(seed, sizes, pool), out, "partsupp")


def paths(out: str) -> dict[str, str]:
    """Table name -> its directory of Parquet files under ``out``."""
    return {t: os.path.join(out, t) for t in TABLES}


def complete(out: str) -> bool:
    """Whether ``out`` holds all eight tables (so a benchmark can reuse them)."""
    return all(os.path.isdir(p) and any(f.endswith(".parquet") for f in os.listdir(p)) for p in paths(out).values())


def default_dir(sf: float) -> str:
    label = f"{sf:g}".replace(".", "_")
    return os.path.join(os.path.dirname(HERE), "data", f"tpch-sf{label}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sf", type=float, default=1.0, help="scale factor (1: lineitem about 6M rows)")
    ap.add_argument("--out", help="output directory (default bench/data/tpch-sf<SF>)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--files", type=int, help="files of orders and of lineitem (default 8 per SF, at least 2)")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes")
    args = ap.parse_args(argv)
    out = args.out or default_dir(args.sf)
    t0 = time.perf_counter()
    generate(out, args.sf, args.seed, args.files, args.workers)
    rows = {t: pq.ParquetDataset(p).read(columns=[]).num_rows for t, p in paths(out).items()}
    print(f"TPC-H SF{args.sf:g} in {out} ({time.perf_counter() - t0:.1f} s): "
          + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
