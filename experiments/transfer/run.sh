#!/usr/bin/env bash
# The transfer experiment in the order that answers "does pretraining help?" soonest:
# the permutation-LM pretraining, then PLM and scratch on SST-2 and MRPC at seed 0, then
# seeds 1 and 2, then the DAE baseline and the other ablation rows, then RTE and SQuAD.
# Each call skips the units already done, so the script can be stopped and rerun at any
# time (nohup bash experiments/transfer/run.sh DATA WORK >> transfer.out 2>&1 &).
set -u
DATA=${1:?usage: run.sh DATA_DIR WORK_DIR}
WORK=${2:?usage: run.sh DATA_DIR WORK_DIR}
cd "$(dirname "$0")/../.."
run() { python -m xlnet_tf.experiments.transfer --data_dir="$DATA" --work_dir="$WORK" \
          --results_dir=experiments/transfer "$@"; }
run --variants=plm,scratch --tasks=sst-2,mrpc --seeds=0,1,2
run --variants=plm,scratch,dae,plm_nomem,plm_nospan,plm_nobidata --tasks=sst-2,mrpc --seeds=0,1,2
run --variants=plm,scratch,dae,plm_nomem,plm_nospan,plm_nobidata --tasks=sst-2,mrpc,rte,squad --seeds=0,1,2
