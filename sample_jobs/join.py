"""Join two keyed datasets: customers and their orders.

    python sample_jobs/join.py [CUSTOMERS [ORDERS]] [--data DIR] [--output DIR]
    sparkctl submit sample_jobs/join.py 5000 50000 --data s3a://bucket/shop --output s3a://bucket/spend

Both datasets are generated deterministically in the tasks. The orders are keyed by
customer id and joined with the customers (an inner join, for spend per customer and
per city) and left-outer-joined (to find customers without orders).

With ``--data DIR`` (a path or URL) the datasets are read from ``DIR/customers`` and
``DIR/orders`` (CSV text), written there first when DIR does not hold them yet; with
``--output DIR`` the spend per customer is saved as ``id,name,cents`` lines.
"""
import os
import random
import sys
from operator import add

try:
    from sparkctl import SparkContext
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkctl import SparkContext

CITIES = ["Harrowmere", "Eastwick", "Lowford", "Millbank", "Stonebridge", "Ashby"]


def customer(cid):
    """(customer id, (name, city))"""
    rnd = random.Random(cid)
    return cid, (f"customer-{cid:05d}", rnd.choice(CITIES))


def order(oid, customers):
    """(customer id, amount in cents): some customers order a lot, some never."""
    rnd = random.Random(1_000_003 + oid)
    cid = int(customers * rnd.random() ** 1.5)  # skewed toward low ids
    return cid, rnd.randint(100, 20_000)


def customer_line(kv):
    cid, (name, city) = kv
    return f"{cid},{name},{city}"


def parse_customer(line):
    cid, name, city = line.split(",")
    return int(cid), (name, city)


def parse_order(line):
    cid, cents = line.split(",")
    return int(cid), int(cents)


def datasets(sc, n_customers, n_orders, data):
    """(customers, orders): generated in the tasks, or read from DATA (saved there first)."""
    customers = sc.range(n_customers).map(customer)
    orders = sc.range(n_orders).map(lambda oid: order(oid, n_customers))
    if data is None:
        return customers, orders
    data = data.rstrip("/")
    try:
        sc.textFile(data + "/customers/_SUCCESS").count()
    except FileNotFoundError:
        customers.map(customer_line).saveAsTextFile(data + "/customers")
        orders.map(lambda kv: f"{kv[0]},{kv[1]}").saveAsTextFile(data + "/orders")
    return (sc.textFile(data + "/customers").map(parse_customer),
            sc.textFile(data + "/orders").map(parse_order))


def main(argv):
    args, options = [], {}
    rest = iter(argv[1:])
    for arg in rest:
        if arg in ("--data", "--output"):
            options[arg] = next(rest, None)
            if options[arg] is None:
                print(f"join.py: {arg} needs a directory", file=sys.stderr)
                return 2
        else:
            args.append(arg)
    n_customers = int(args[0]) if len(args) > 0 else 5_000
    n_orders = int(args[1]) if len(args) > 1 else 50_000

    sc = SparkContext(appName="PythonJoin")
    try:
        customers, orders = datasets(sc, n_customers, n_orders, options.get("--data"))

        joined = orders.join(customers)  # (cid, (amount, (name, city)))
        spend = joined.map(lambda kv: ((kv[0], kv[1][1][0]), kv[1][0])).reduceByKey(add)
        by_city = joined.map(lambda kv: (kv[1][1][1], (kv[1][0], 1))) \
                        .reduceByKey(lambda a, b: (a[0] + b[0], a[1] + b[1]))
        without_orders = customers.leftOuterJoin(orders).filter(lambda kv: kv[1][1] is None).count()

        print(f"{n_customers} customers, {n_orders} orders, {joined.count()} joined records")
        print(f"{spend.count()} customers ordered; {without_orders} never did")
        print("Top 5 customers by spend:")
        for (cid, name), cents in spend.takeOrdered(5, key=lambda kv: (-kv[1], kv[0])):
            print(f"  {name} (id {cid}): {cents / 100:,.2f}")
        print("Orders and revenue by city:")
        for city, (cents, count) in sorted(by_city.collect()):
            print(f"  {city:<12} {count:>6} orders {cents / 100:>12,.2f}")
        if options.get("--output"):
            spend.map(lambda kv: f"{kv[0][0]},{kv[0][1]},{kv[1]}").saveAsTextFile(options["--output"])
            print(f"Spend per customer saved to {options['--output']}")
    finally:
        sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
