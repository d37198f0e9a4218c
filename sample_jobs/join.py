"""Join two keyed datasets: customers and their orders.

    python sample_jobs/join.py [CUSTOMERS [ORDERS]]

Both datasets are generated deterministically in the tasks. The orders are keyed by
customer id and joined with the customers (an inner join, for spend per customer and
per city) and left-outer-joined (to find customers without orders).
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


def main(argv):
    n_customers = int(argv[1]) if len(argv) > 1 else 5_000
    n_orders = int(argv[2]) if len(argv) > 2 else 50_000

    sc = SparkContext(appName="PythonJoin")
    try:
        customers = sc.range(n_customers).map(customer)
        orders = sc.range(n_orders).map(lambda oid: order(oid, n_customers))

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
    finally:
        sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
