#!/usr/bin/env python3
# Real model families exported to ONNX by PyTorch (the dynamo exporter at its default opset, and
# the TorchScript exporter at opset 17), random weights, small configurations, written as ONNX
# backend-style cases (model.onnx + test_data_set_0/{input,output}_N.pb) with onnxruntime's
# outputs as the reference. Needs torch, torchvision, torchaudio, timm, transformers, onnx and
# onnxruntime (the H200 device machine has them). Then:
#
#   python3 scripts/onnx-zoo-cases.py OUT [--rounds 123] [--only NAME ...]
#   shoal conformance OUT --atol 1e-4 [--device cuda]
#
# Rounds: 1 torchvision/timm/Hugging Face classics, 2 more of each, 3 audio, LLM variants and
# attention-heavy vision models. --only keeps the named models (without the _dynamo/_ts17
# suffix). A model whose construction or export fails in PyTorch is reported and skipped.
# Results of 2026-12-03: bench/results/2026-12-03-h200-onnx-zoo/.
import os, sys, time, traceback
import numpy as np, torch, torchvision, onnx, onnxruntime as ort
from onnx import numpy_helper

import argparse
ap = argparse.ArgumentParser(description="PyTorch exports of real models as ONNX test cases")
ap.add_argument("out")
ap.add_argument("--rounds", default="123", help="which rounds of models, e.g. 12")
ap.add_argument("--recheck", default="", help="rounds of which only the --only models run")
ap.add_argument("--only", nargs="*", default=[], help="model names (without _dynamo/_ts17)")
opts = ap.parse_args()
out = opts.out
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

def img(n=1, c=3, s=64): return torch.randn(n, c, s, s)

class Hf(torch.nn.Module):
    """A Hugging Face model returning its first output only (a tensor)."""
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, *a):
        o = s.m(*a)
        return o[0] if isinstance(o, (tuple, list)) else o.last_hidden_state

def tv():
    import torchvision.models as M
    from torchvision.models.swin_transformer import SwinTransformer
    from torchvision.models.convnext import ConvNeXt, CNBlockConfig
    from torchvision.models.vision_transformer import VisionTransformer
    from torchvision.models.densenet import DenseNet
    yield "tv_squeezenet1_1", lambda: M.squeezenet1_1(num_classes=10), (img(),)
    yield "tv_shufflenet_v2_x0_5", lambda: M.shufflenet_v2_x0_5(num_classes=10), (img(),)
    yield "tv_mnasnet0_5", lambda: M.mnasnet0_5(num_classes=10), (img(),)
    yield "tv_densenet_small", lambda: DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, num_classes=10), (img(),)
    yield "tv_convnext_small_cfg", lambda: ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)], num_classes=10), (img(),)
    yield "tv_swin_small_cfg", lambda: SwinTransformer([4, 4], 16, [2, 2], [2, 4], [4, 4], num_classes=10), (img(s=32),)
    yield "tv_vit_small_cfg", lambda: VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10), (img(s=32),)

def tm():
    import timm
    specs = [("tinynet_e", {}, 64), ("regnetx_002", {}, 64), ("mobilevit_xxs", {}, 64), ("ghostnet_050", {}, 64),
             ("efficientformerv2_s0", {}, 224), ("levit_128s", {}, 224),
             ("mixer_s32_224", dict(img_size=64, num_blocks=2, embed_dim=64), 64),
             ("resmlp_12_224", dict(img_size=64, num_blocks=2, embed_dim=64), 64),
             ("poolformer_s12", dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64)), 64),
             ("convnextv2_atto", {}, 64), ("edgenext_xx_small", {}, 64), ("repvit_m0_9", {}, 64)]
    for n, kw, size in specs:
        yield "timm_" + n, (lambda n=n, kw=kw: timm.create_model(n, pretrained=False, num_classes=10, **kw)), (img(s=size),)

def hf():
    import transformers as T
    ids = torch.tensor([[5, 17, 9, 33, 2, 71, 8, 40]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    yield "hf_bert", lambda: Hf(T.BertModel(T.BertConfig(**small, max_position_embeddings=16))), (ids, mask, torch.zeros_like(ids))
    yield "hf_distilbert", lambda: Hf(T.DistilBertModel(T.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=100, max_position_embeddings=16))), (ids, mask)
    yield "hf_gpt2", lambda: Hf(T.GPT2Model(T.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=16))), (ids,)
    yield "hf_llama", lambda: Hf(T.LlamaModel(T.LlamaConfig(**small, num_key_value_heads=1, max_position_embeddings=16))), (ids,)
    yield "hf_t5_encoder", lambda: Hf(T.T5EncoderModel(T.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, vocab_size=100))), (ids,)
    yield "hf_vit", lambda: Hf(T.ViTModel(T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))), (img(s=32),)
    yield "hf_whisper_encoder", lambda: Hf(T.WhisperModel(T.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16, vocab_size=100)).get_encoder()), (torch.randn(1, 8, 32),)

def tv2():
    import torchvision.models as M
    import torchvision.models.segmentation as S
    import torchvision.models.video as V
    yield "tv_lraspp_mobilenet_v3", lambda: S.lraspp_mobilenet_v3_large(num_classes=4, weights_backbone=None), (img(),)
    yield "tv_deeplabv3_mobilenet_v3", lambda: S.deeplabv3_mobilenet_v3_large(num_classes=4, weights_backbone=None, aux_loss=False), (img(),)
    yield "tv_r3d_18", lambda: V.r3d_18(num_classes=10), (torch.randn(1, 3, 4, 32, 32),)
    yield "tv_mc3_18", lambda: V.mc3_18(num_classes=10), (torch.randn(1, 3, 4, 32, 32),)
    yield "tv_efficientnet_v2_s", lambda: M.efficientnet_v2_s(num_classes=10), (img(),)
    yield "tv_regnet_y_400mf", lambda: M.regnet_y_400mf(num_classes=10), (img(),)
    yield "tv_inception_v3", lambda: M.inception_v3(num_classes=10, aux_logits=False, init_weights=True), (img(s=96),)
    yield "tv_maxvit_small_cfg", lambda: __import__("torchvision.models.maxvit", fromlist=["MaxVit"]).MaxVit(
        input_size=(64, 64), stem_channels=16, partition_size=4, block_channels=[16, 32], block_layers=[1, 1], head_dim=8,
        stochastic_depth_prob=0.0, num_classes=10), (img(),)

def tm2():
    import timm
    specs = [("resnest14d", {}, 64), ("res2net50_14w_8s", {}, 64), ("dla34", {}, 64), ("hrnet_w18_small", {}, 64),
             ("mobileone_s0", {}, 64), ("fastvit_t8", {}, 64), ("efficientvit_b0", {}, 64), ("lcnet_050", {}, 64),
             ("mobilenetv4_conv_small", {}, 64), ("tiny_vit_5m_224", {}, 224), ("beit_base_patch16_224", dict(embed_dim=64, depth=2, num_heads=2, img_size=64), 64),
             ("eva02_tiny_patch14_224", dict(img_size=56, depth=2), 56), ("swinv2_cr_tiny_ns_224", dict(img_size=64, embed_dim=24, depths=(1, 1), num_heads=(2, 2), window_size=4), 64),
             ("cspdarknet53", {}, 64), ("xception41", {}, 64), ("sknet", {}, 64), ("selecsls42b", {}, 64), ("gernet_s", {}, 64),
             ("vit_small_patch16_224", dict(img_size=64, depth=2, embed_dim=64, num_heads=2), 64),
             ("deit_tiny_distilled_patch16_224", dict(img_size=64, depth=2), 64),
             ("coat_lite_tiny", {}, 224), ("crossvit_tiny_240", {}, 240), ("pit_ti_224", {}, 224), ("convit_tiny", dict(img_size=64, depth=2), 64),
             ("cait_xxs24_224", dict(img_size=64, depth=2), 64), ("volo_d1_224", dict(img_size=64), 64), ("nfnet_l0", {}, 64)]
    for n, kw, size in specs:
        yield "timm_" + n, (lambda n=n, kw=kw: timm.create_model(n, pretrained=False, num_classes=10, **kw)), (img(s=size),)

def hf2():
    import transformers as T
    ids = torch.tensor([[5, 17, 9, 33, 2, 71, 8, 40]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    yield "hf_whisper_encoder", lambda: Hf(T.WhisperModel(T.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)).get_encoder()), (torch.randn(1, 8, 32),)
    yield "hf_roberta", lambda: Hf(T.RobertaModel(T.RobertaConfig(**small, max_position_embeddings=20))), (ids, mask)
    yield "hf_albert", lambda: Hf(T.AlbertModel(T.AlbertConfig(**small, embedding_size=16, max_position_embeddings=16))), (ids, mask)
    yield "hf_deberta_v2", lambda: Hf(T.DebertaV2Model(T.DebertaV2Config(**small, max_position_embeddings=16, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8))), (ids, mask)
    yield "hf_bart_encoder", lambda: Hf(T.BartModel(T.BartConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100, max_position_embeddings=16)).get_encoder()), (ids, mask)
    yield "hf_qwen2", lambda: Hf(T.Qwen2Model(T.Qwen2Config(**small, num_key_value_heads=1, max_position_embeddings=16))), (ids,)
    yield "hf_mistral", lambda: Hf(T.MistralModel(T.MistralConfig(**small, num_key_value_heads=1, max_position_embeddings=16, sliding_window=4))), (ids,)
    yield "hf_gpt_neox", lambda: Hf(T.GPTNeoXModel(T.GPTNeoXConfig(**small, max_position_embeddings=16, rotary_pct=0.5))), (ids,)
    yield "hf_phi", lambda: Hf(T.PhiModel(T.PhiConfig(**small, max_position_embeddings=16, partial_rotary_factor=0.5))), (ids,)
    yield "hf_mobilebert", lambda: Hf(T.MobileBertModel(T.MobileBertConfig(**small, embedding_size=16, intra_bottleneck_size=16, num_feedforward_networks=2, max_position_embeddings=16))), (ids, mask)
    yield "hf_clip_text", lambda: Hf(T.CLIPTextModel(T.CLIPTextConfig(**small, max_position_embeddings=16))), (ids,)
    yield "hf_clip_vision", lambda: Hf(T.CLIPVisionModel(T.CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))), (img(s=32),)
    yield "hf_segformer", lambda: Hf(T.SegformerForSemanticSegmentation(T.SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=32, num_labels=4))), (img(),)
    yield "hf_dinov2", lambda: Hf(T.Dinov2Model(T.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))), (img(s=48),)
    yield "hf_wav2vec2", lambda: Hf(T.Wav2Vec2Model(T.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4))), (torch.randn(1, 400),)
    yield "hf_convnext", lambda: Hf(T.ConvNextModel(T.ConvNextConfig(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2))), (img(),)
    yield "hf_swin", lambda: Hf(T.SwinModel(T.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4))), (img(s=32),)
    yield "hf_beit", lambda: Hf(T.BeitModel(T.BeitConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8, use_relative_position_bias=True))), (img(s=32),)

def tv3():
    import torchvision.models.optical_flow as F
    import torchaudio.models as A
    class Raft(torch.nn.Module):
        def __init__(s): super().__init__(); s.m = F.raft_small(num_flow_updates=3)
        def forward(s, a, b): return s.m(a, b, num_flow_updates=3)[-1]
    yield "tv_raft_small", Raft, (img(s=64), img(s=64))
    class Conformer(torch.nn.Module):
        def __init__(s): super().__init__(); s.m = A.Conformer(input_dim=16, num_heads=2, ffn_dim=32, num_layers=2, depthwise_conv_kernel_size=3)
        def forward(s, x, n): return s.m(x, n)[0]
    yield "ta_conformer", Conformer, (torch.randn(2, 10, 16), torch.tensor([10, 7]))
    yield "ta_convtasnet", lambda: A.ConvTasNet(num_sources=2, enc_kernel_size=8, enc_num_feats=16, msk_kernel_size=3, msk_num_feats=8, msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=1), (torch.randn(1, 1, 160),)

def tm3():
    import timm
    specs = [("mobilevitv2_050", {}, 64), ("efficientformer_l1", {}, 224), ("gcvit_xxtiny", {}, 224), ("rexnet_100", {}, 64),
             ("tresnet_m", {}, 64), ("hgnetv2_b0", {}, 64), ("fbnetv3_b", {}, 64), ("ghostnetv2_100", {}, 64), ("ese_vovnet19b_dw", {}, 64),
             ("regnetz_005", {}, 64), ("halonet26t", {}, 256), ("botnet26t_256", {}, 256), ("lambda_resnet26t", {}, 256),
             ("sequencer2d_s", dict(layers=(1, 1, 1, 1)), 64), ("pvt_v2_b0", {}, 64), ("mvitv2_tiny", dict(depths=(1, 1, 1, 1)), 224),
             ("xcit_nano_12_p16_224", dict(depth=2), 64), ("gmlp_ti16_224", dict(num_blocks=2, img_size=64), 64),
             ("inception_v4", {}, 96), ("dpn48b", {}, 64), ("repghostnet_050", {}, 64), ("starnet_s1", {}, 64),
             ("focalnet_tiny_srf", dict(depths=(1, 1, 1, 1)), 64), ("nest_tiny", dict(img_size=64, depths=(1, 1, 1)), 64)]
    for n, kw, size in specs:
        yield "timm_" + n, (lambda n=n, kw=kw: timm.create_model(n, pretrained=False, num_classes=10, **kw)), (img(s=size),)

def hf3():
    import transformers as T
    ids = torch.tensor([[5, 17, 9, 33, 2, 71, 8, 40]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    yield "hf_opt", lambda: Hf(T.OPTModel(T.OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, vocab_size=100, max_position_embeddings=16, word_embed_proj_dim=32))), (ids, mask)
    yield "hf_bloom", lambda: Hf(T.BloomModel(T.BloomConfig(hidden_size=32, n_layer=2, n_head=2, vocab_size=100))), (ids, mask)
    yield "hf_gptj", lambda: Hf(T.GPTJModel(T.GPTJConfig(n_embd=32, n_layer=2, n_head=2, rotary_dim=8, vocab_size=100, n_positions=16))), (ids,)
    yield "hf_falcon", lambda: Hf(T.FalconModel(T.FalconConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=100))), (ids,)
    yield "hf_gemma", lambda: Hf(T.GemmaModel(T.GemmaConfig(**small, num_key_value_heads=1, head_dim=16, max_position_embeddings=16))), (ids,)
    yield "hf_mixtral", lambda: Hf(T.MixtralModel(T.MixtralConfig(**small, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=16))), (ids,)
    yield "hf_electra", lambda: Hf(T.ElectraModel(T.ElectraConfig(**small, embedding_size=16, max_position_embeddings=16))), (ids, mask)
    yield "hf_xlm_roberta", lambda: Hf(T.XLMRobertaModel(T.XLMRobertaConfig(**small, max_position_embeddings=20))), (ids, mask)
    yield "hf_mobilevitv2", lambda: Hf(T.MobileViTV2Model(T.MobileViTV2Config(image_size=64, width_multiplier=0.5))), (img(),)
    yield "hf_levit", lambda: Hf(T.LevitModel(T.LevitConfig(image_size=64, hidden_sizes=[32, 48, 64], num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8]))), (img(),)
    yield "hf_yolos", lambda: Hf(T.YolosModel(T.YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=[32, 32], patch_size=8, num_detection_tokens=4))), (img(s=32),)
    yield "hf_efficientnet", lambda: Hf(T.EfficientNetModel(T.EfficientNetConfig(image_size=64, width_coefficient=0.25, depth_coefficient=0.25))), (img(),)
    yield "hf_poolformer", lambda: Hf(T.PoolFormerModel(T.PoolFormerConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1]))), (img(),)
    yield "hf_t5_full", lambda: Hf(T.T5Model(T.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, vocab_size=100))), (ids, mask, ids[:, :5])

ROUNDS = {"1": ("tv", "tm", "hf"), "2": ("tv2", "tm2", "hf2"), "3": ("tv3", "tm3", "hf3")}

def save_case(name, mod, args, dynamo):
    d = os.path.join(out, name); ds = os.path.join(d, "test_data_set_0"); os.makedirs(ds, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    t = time.time()
    if dynamo:
        prog = torch.onnx.export(mod, args, dynamo=True)
        prog.save(path, external_data=False)
    else:
        names = [f"in{i}" for i in range(len(args))]
        torch.onnx.export(mod, args, path, dynamo=False, opset_version=17, input_names=names)
    m = onnx.load(path)
    print(name, f"{time.time()-t:.1f}s", "opset", [(o.domain, o.version) for o in m.opset_import],
          "ops:", " ".join(sorted({n.op_type for n in m.graph.node})), flush=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = [a.numpy() for a in args][:len(names)]
    res = sess.run(None, dict(zip(names, feeds)))
    with torch.no_grad():
        ref = mod(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    print(name, "onnxruntime vs torch, max |diff|:", max(float(np.abs(r - t.numpy()).max()) for r, t in zip(res, ref)), flush=True)
    for i, (n, a) in enumerate(zip(names, feeds)):
        open(os.path.join(ds, f"input_{i}.pb"), "wb").write(numpy_helper.from_array(a, n).SerializeToString())
    for i, (o, a) in enumerate(zip(sess.get_outputs(), res)):
        open(os.path.join(ds, f"output_{i}.pb"), "wb").write(numpy_helper.from_array(a, o.name).SerializeToString())

# --rounds run whole, unless --only names models and no --recheck is given (then --rounds are
# filtered); --recheck R adds round R's --only models to whole --rounds.
filtered = opts.recheck if opts.recheck else (opts.rounds if opts.only else "")
full = [g for r in opts.rounds for g in ROUNDS[r]] if (opts.recheck or not opts.only) else []
partial = [g for r in filtered for g in ROUNDS[r]]
for gen in [globals()[g] for g in partial + full]:
    try:
        items = list(gen())
    except Exception as e:
        print(gen.__name__, "unavailable:", type(e).__name__, str(e)[:200]); continue
    for name, make, args in items:
        if gen.__name__ in partial and name not in opts.only: continue
        try:
            torch.manual_seed(0)
            mod = make().eval()
        except Exception as e:
            print(name, "construction failed:", type(e).__name__, str(e)[:200], flush=True); continue
        for dynamo in (True, False):
            tag = name + ("_dynamo" if dynamo else "_ts17")
            try:
                save_case(tag, mod, args, dynamo)
            except Exception as e:
                print(tag, "export failed:", type(e).__name__, str(e)[:300].replace("\n", " "), flush=True)
                import shutil; shutil.rmtree(os.path.join(out, tag), ignore_errors=True)
