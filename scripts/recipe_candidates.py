"""Print the whole recipes `metaeol tune recipe` compares on STS-B dev for a best-recipe preset, as JSON.

The Token Prepending and Contrastive Prompting values come from `metaeol tune tp|cp` on the same model's dev split.
Layers are relative (-2 = the penultimate output) so a recipe means the same on models of any depth.
Usage: python scripts/recipe_candidates.py --token-prepending 1,7 --contrastive 4,ns,2 --tuned-layer 28 > recipes.json
"""

from __future__ import annotations

import argparse
import json


def recipes(token_prepending: list[int], contrastive: dict, tuned_layer: int) -> list[dict]:
    """Template sets alone, then MetaEOL (penultimate layer, as tune-layer picks on SmolLM2) and CK with each method
    and both; the plain MetaEOL preset is the first candidate, so the table shows what each recipe adds to it.
    KE + TP and the MetaEOL + KE ensemble were added after a first round showed TP helping one- and two-prompt sets
    and KE being the best single prompt (all on dev)."""
    tp, cp = {"token_prepending": token_prepending}, {"contrastive": contrastive}
    candidates = [
        {"label": "MetaEOL", "templates": "metaeol"},
        {"label": "MetaEOL, layer -2", "templates": "metaeol", "layer": -2},
        {"label": f"MetaEOL, layer {tuned_layer} (tune-layer)", "templates": "metaeol", "layer": tuned_layer},
        {"label": "PCoT", "templates": "pcot"},
        {"label": "KE", "templates": "ke"},
        {"label": "CK", "templates": "ck"},
        {"label": "MetaEOL + CK", "templates": "metaeol+ck"},
        {"label": "PromptEOL", "templates": "prompteol"},
        {"label": "PromptEOL + TP", "templates": "prompteol", **tp},
        {"label": "KE + TP", "templates": "ke", **tp},
        {"label": "MetaEOL + KE, layer -2", "templates": "metaeol+ke", "layer": -2},
    ]
    for templates, layer, name in (("metaeol", -2, "MetaEOL, layer -2"), ("ck", None, "CK")):
        base = {"templates": templates} if layer is None else {"templates": templates, "layer": layer}
        candidates += [
            {"label": f"{name} + TP", **base, **tp},
            {"label": f"{name} + CP", **base, **cp},
            {"label": f"{name} + TP + CP", **base, **tp, **cp},
        ]
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-prepending", required=True, help="START,EXIT chosen by `metaeol tune tp`")
    parser.add_argument("--contrastive", required=True, help="LAYER,ns,ALPHA chosen by `metaeol tune cp`")
    parser.add_argument("--tuned-layer", type=int, required=True, help="the layer chosen by `metaeol tune-layer`")
    args = parser.parse_args()
    start, exit_ = (int(value) for value in args.token_prepending.split(","))
    layer, mode, alpha = args.contrastive.split(",")
    contrastive = {"layer": int(layer), "mode": mode, "alpha": float(alpha)}
    print(json.dumps(recipes([start, exit_], contrastive, args.tuned_layer), indent=2))


if __name__ == "__main__":
    main()
