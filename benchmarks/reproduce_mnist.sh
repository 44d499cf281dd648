#!/usr/bin/env bash
# Full-scale reproduction on MNIST and Fashion-MNIST, ready for a GPU (issue 17, item 5).
#
# Every stage is one run_methods.py call on the full official splits with the
# papers' network (SmallCNN, the TRADES MNIST CNN) and threat model, reporting
# clean accuracy, PGD-20 and the library's standard AutoAttack (--eval-attack
# strong) with wall times. Schedules are shortened to fit a lent GPU machine (one
# call lasts at most 10 minutes): EPOCHS (default 20) instead of the papers' 50-100;
# say so beside any number. Run one stage per call, e.g. with the device tool:
#   STAGE=pgd_at bash benchmarks/reproduce_mnist.sh       (carry [".whl", ".data"])
# and prepare .whl/.data as benchmarks/gpu_session.sh says. Published numbers to
# compare with (AutoAttack's table, Croce & Hein 2020, MNIST L-inf eps=0.3, clean /
# AutoAttack): Madry et al. 98.53 / 88.50, TRADES 99.48 / 92.81.
# STAGE=rd_ntk / rd_trilevel (RD_EPS=0.1 or 0.3): the robust-dataset learners on
# all 60,000 training images (benchmarks/robust_datasets.py; a CPU smoke run:
# RD_EXTRA="--n-train 300 --n-test 50 --max-iter 2 --epochs 1 --cnn-epochs 1
# --eval-attack pgd --cnn-eval-attack pgd" DEVICE=cpu).
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
DATA=${DATA:-.data/mnist.npz}
FASHION=${FASHION:-.data/fashion_mnist.npz}
EPOCHS=${EPOCHS:-20}
DEVICE=${DEVICE:-cuda}
STAGE=${STAGE:-pgd_at}
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
# EXTRA: more run_methods options (a CPU smoke run: EXTRA="--n-train 200 --n-test 20");
# TAG: the first part of the result files' tag (default full; e.g. n2000 for a
# reduced run)
# shellcheck disable=SC2206
common=(--device "$DEVICE" --epochs "$EPOCHS" --seeds 0 --module smallcnn
        --eval-attack strong ${EXTRA:-})
case "$STAGE" in
    # eps 0.3, PGD-40 of step 0.01 (Madry et al.'s MNIST setting) for every method
    pgd_at|trades|gairat|dale)
        python3 -m benchmarks.run_methods --data mnist --data-path "$DATA" \
            "${common[@]}" --methods "$STAGE" --eps 0.3 --attack-steps 40 \
            --step-size 0.01 --tag "${TAG:-full}_${STAGE}_e${EPOCHS}" ;;
    # the Lipschitz / dropout table of Yang et al. (2020) at eps 0.1
    lipschitz)
        python3 -m benchmarks.run_methods --data mnist --data-path "$DATA" \
            "${common[@]}" --methods lolip_trades lolip_trades_drop lolip_at \
            lolip_at_drop --eps 0.1 --attack-steps 10 \
            --tag "${TAG:-full}_lipschitz_e${EPOCHS}" ;;
    # a second data set: Fashion-MNIST at eps 0.1
    fashion)
        python3 -m benchmarks.run_methods --data fashion_mnist --data-path "$FASHION" \
            "${common[@]}" --methods natural pgd_at trades --eps 0.1 \
            --attack-steps 10 --tag "${TAG:-full}_e${EPOCHS}" ;;
    # robust datasets on full MNIST (issue 18): one learner and its eps=0 control
    # per stage, learned at the evaluation eps (RD_EPS, default 0.1; 0.3 also),
    # naturally trained MLP(256, 256) and SmallCNN, the strong scorer on 1000
    # test images, noise controls and the PGD-AT ceiling
    rd_ntk|rd_trilevel)
        learner=${STAGE#rd_}
        # shellcheck disable=SC2086
        python3 -m benchmarks.robust_datasets --data mnist --data-path "$DATA" \
            --device "$DEVICE" --n-test 1000 --eps "${RD_EPS:-0.1}" \
            --archs mlp smallcnn --ceilings pgd_at --seeds 1 2 3 \
            --learners original "$learner" "${learner}_eps0" ${RD_EXTRA:-} \
            --tag "full_${learner}_e${RD_EPS:-0.1}" ;;
    *) echo "unknown STAGE=$STAGE (pgd_at, trades, gairat, dale, lipschitz, fashion,"\
            "rd_ntk, rd_trilevel)"
       exit 2 ;;
esac 2>&1 | tee "$OUT/log_$STAGE.txt"
tar czf "$OUT/results_$STAGE.tgz" benchmarks/results/*"${DEVICE%%:*}"* \
    2>>"$OUT/log_$STAGE.txt"
