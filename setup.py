from setuptools import find_packages, setup

setup(
    name="sparkctl",
    version="0.1.0",
    description="Apache Spark's architecture in Python: standalone master, workers, executors and PySpark's RDD API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["sparkctl", "sparkctl.*"]),
    # the web UI's pages, scripts and styles, served by sparkctl/ui/server.py from the package
    package_data={"sparkctl.ui": ["static/*"]},
    install_requires=[
        "click>=8.1",
        "cloudpickle>=2.2",
        "tabulate>=0.9",
        "paramiko>=3.0",
        # every path is a URL: fsspec is the filesystem layer pandas, Dask and pyarrow share
        # (pure Python, no dependencies); each store's backend is an extra below
        "fsspec>=2023.1",
        # LZ4: Spark's default shuffle and spill codec (spark.io.compression.codec), so a
        # plain install compresses its shuffles as Spark does; also .lz4 files in and out.
        # A binding to the reference C library. Where it cannot be installed, shuffles are
        # written uncompressed with one warning.
        "lz4>=4.0",
    ],
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.2",
            "hypothesis>=6.90",
            # tests/test_pyspark_examples.py runs Apache Spark's Python examples from the
            # pyspark wheel (no Java needed); three of them use numpy
            "pyspark==4.3.0",
            "numpy>=1.26",
            # .zst input and ZStandardCodec output are tested too, as are .lz4 files and the
            # shuffle and spill codecs (spark.io.compression.codec lz4 and zstd)
            "zstandard>=0.22",
            "lz4>=4.0",
            # DataFrames and SQL (the sql extra), and pandas for toPandas/createDataFrame(pandas)
            "pyarrow>=14",
            "sqlglot>=25",
            "pandas>=2.0",
            # the object-store tests run against a real S3-protocol server (moto's, on 127.0.0.1)
            "s3fs>=2023.1",
            "moto[server]>=5.0",
            "aiohttp>=3.8",
            "duckdb>=1.0",  # the reference for the TPC-H answers (tests/test_tpch.py, bench/tpch)
            # the type hints of the daemons, the scheduler and the RDD engine are checked
            # (tests/test_typing.py): a checker finds the None and type slips reviews miss
            "mypy>=1.8",
        ],
        # DataFrames and SQL: Arrow tables and pyarrow's compute kernels execute them (measured
        # faster than an embedded DuckDB per task); sqlglot parses spark.sql() in Spark's dialect
        "sql": ["pyarrow>=14", "numpy>=1.26", "sqlglot>=25"],
        # object stores and other filesystems behind URLs, through fsspec's backends
        "s3": ["s3fs>=2023.1"],
        "gcs": ["gcsfs>=2023.1"],
        "azure": ["adlfs>=2023.1"],
        "hdfs": ["pyarrow>=12"],
        "http": ["aiohttp>=3.8"],
        # Zstandard-compressed files (.zst in, ZStandardCodec out): a maintained binding to
        # the reference C library, where Python's standard library has none before 3.14
        "zstd": ["zstandard>=0.22"],
        # kept for installs that name it; lz4 is now in the base install
        "lz4": ["lz4>=4.0"],
    },
    entry_points={"console_scripts": ["sparkctl=sparkctl.cli:entry"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: POSIX :: Linux",
    ],
)
