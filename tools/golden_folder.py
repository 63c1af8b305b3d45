"""A generated folder of golden cases: the command line the generators share,
and its README.md: an introduction, then one row per case with the settings of
its case.json, how well-conditioned it is (tools/check_golden_f64.py: the
float64 recompute's worst error over the float32 tolerance, and the margin to a
ReLU / max-pool tie) and its size on disk."""

import argparse
import json
import math
import os

import check_golden_f64
import dump_golden_case as dg

CONDITIONING = (
    '`f64` is the float64 recompute of the case from its own files (`tools/check_golden_f64.py`):\n'
    'the worst error over the float32 tolerance of `../GOLDEN.md` (what the float64 interpreter\n'
    'should show) and its tensor. `margin` is the smallest nonzero |ReLU input| or max-pool top-2\n'
    'gap in the train-mode forwards (– when the model has neither).\n'
)


def conditioning(root, name):
    ratios, m = check_golden_f64.check_case(os.path.join(root, name))
    worst = max(ratios, key=ratios.get)
    margin = min(m.values())
    return f'{ratios[worst]:.2g} ({worst})', '–' if math.isinf(margin) else f'{margin:.1e}'


def case_bytes(root, name):
    folder = os.path.join(root, name)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def settings(meta):
    t = meta['train']
    out = [t['loss']] if t['loss_kind'] != 'cross_entropy' or t['label_smoothing'] else []
    if meta['dropout']:
        out.append('masks ' + ', '.join(f"{d['module']} ({d['kind']} p={d['p']})" for d in meta['dropout']))
    return '; '.join(out)


def write(root, intro, rows, extra_columns=()):
    """rows: [(case, case.json dict)]; extra_columns: [(title, function of the dict)]."""
    head = ['case', 'model', 'args', 'input', 'B', 'classes', 'params', *[t for t, _ in extra_columns], 'notes', 'f64',
            'margin', 'KiB']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    total = 0
    for name, meta in rows:
        size = case_bytes(root, name)
        total += size
        cells = [f'`{name}`', meta['model'], f"`{json.dumps(meta['args'], separators=(',', ':'))}`",
                 '×'.join(map(str, meta['input_shape'])), str(meta['batch']), str(meta['classes']),
                 str(meta['param_total']), *[f(meta) for _, f in extra_columns], settings(meta),
                 *conditioning(root, name), f'{size / 1024:.0f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    text = (intro + '\n' + CONDITIONING + '\n' + '\n'.join(lines) + '\n\n'
            + f'{len(rows)} cases, {total / 1024:.0f} KiB in all (case folders only).\n')
    dg.write_atomic(os.path.join(root, 'README.md'), text.encode('utf-8'))


def main(doc, root, names, case_argv, intro, extra_columns=()):
    """Writes the cases `names` (each dump_golden_case arguments from case_argv(name, out_root))
    under --out-root, or the ones named on the command line; the README only for all of them."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out-root', default=root)
    p.add_argument('cases', nargs='*', help='only these cases (default: all, and the README)')
    own = p.parse_args()
    unknown = [c for c in own.cases if c not in names]
    if unknown:
        p.error(f'unknown case(s) {unknown}; known: {", ".join(names)}')
    rows = [(name, dg.write_case(dg.parse_args(case_argv(name, own.out_root)))) for name in own.cases or names]
    if not own.cases:
        write(own.out_root, intro, rows, extra_columns)
