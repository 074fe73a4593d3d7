#!/bin/bash
# seeds 3-5 of the 6,442-param start with the old (v24) and new (v25, change 27) start recipes
cd "$(dirname "$0")/../.."
mkdir -p runs/start6442
export ARCHSEARCH_DATA=../shared/data OMP_NUM_THREADS=1
run() { .venv/bin/archsearch train --config $1 --epochs 15 --seed $2 --seeds 1 --json > runs/start6442/$3-s$2.json 2> runs/start6442/$3-s$2.err; }
( run benchmarks/results/v24_picks/trial4.json 3 old; run benchmarks/results/v25_picks/trial4.json 4 new; run benchmarks/results/v24_picks/trial4.json 5 old ) &
( run benchmarks/results/v25_picks/trial4.json 3 new; run benchmarks/results/v24_picks/trial4.json 4 old; run benchmarks/results/v25_picks/trial4.json 5 new ) &
wait
