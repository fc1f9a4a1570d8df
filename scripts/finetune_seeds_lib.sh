# Sourced from the repository root by scripts/finetune_seeds.sh and
# scripts/finetune_seeds_distilled.sh: builds fqc ($fqc), fetches the training split if
# it is missing, and defines the settings and the two kinds of run of the seed study
# (Fashion-MNIST CNN, first and last layer at 8-bit weights), so both scripts run
# exactly the same command lines.

cargo build --release --quiet -p fqc
fqc=${CARGO_TARGET_DIR:-target}/release/fqc
[ -f data/fashion_train.npz ] || python3 scripts/fetch_fashion.py

common=(--train data/fashion_train.npz --test examples/fashion/fashion_test.npz
    --patience 0 --crop-pad 2 --hflip --layer /conv1/Conv=w8 --layer /fc2/Gemm=w8)
# gradual DIR SEED EPOCHS [ARG...]: the gradual run down to w2a2 into DIR.
gradual() {
    local dir=$1 seed=$2 epochs=$3
    shift 3
    "$fqc" compile examples/fashion/fashion_cnn.onnx -o "$dir/gradual.fqc" \
        --schedule w8a8,w4a6,w3a4,w2a4,w2a3,w2a2 --epochs-per-stage "$epochs" \
        --lr 5e-4,5e-4,5e-4,3e-3,2e-3 --save-stages "$dir/stages" --seed "$seed" "$@" \
        --summary-json "$dir/gradual.json" "${common[@]}" >"$dir/gradual.log"
}
# oneshot DIR SEED [ARG...]: one-shot w2a2 at 17 epochs into DIR.
oneshot() {
    local dir=$1 seed=$2
    shift 2
    "$fqc" compile examples/fashion/fashion_cnn.onnx -o "$dir/oneshot_w2a2.fqc" \
        --weights ternary --act-bits 2 --one-shot --epochs-per-stage 17 --lr 3e-3 \
        --seed "$seed" "$@" --summary-json "$dir/oneshot_w2a2.json" "${common[@]}" \
        >"$dir/oneshot_w2a2.log"
}
