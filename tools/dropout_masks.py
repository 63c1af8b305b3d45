"""The exact dropout masks PyTorch applies, for golden cases with dropout p > 0.

    with DropoutMasks(model) as masks:
        ... train-mode forwards ...
    masks.io()   # [('mask.<module path>', multiplier), ...]

For every nn.Dropout / nn.Dropout2d module a forward pre-hook saves torch's
RNG state; the forward hook replays F.dropout / F.dropout2d on ones of the
input's shape from that state (the draws depend only on the shape), checks
that the replay leaves the RNG where the module left it and that the module's
output is input * mask bit for bit, then restores the post state. So the
recording changes nothing in the run. The mask holds 0 or 1/(1-p) (float32,
as PyTorch computes it); Dropout2d's is expanded to the input's shape.

With replay={path: [mask, ...]} the modules' outputs are replaced by
input * mask instead (used to recompute a case in float64).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

REPLAY_FN = {nn.Dropout: F.dropout, nn.Dropout2d: F.dropout2d}


class DropoutMasks:
    def __init__(self, model, replay=None):
        self.model = model
        self.replay = replay
        self.masks = {}  # module path -> one mask per train-mode forward
        self.forwards = 0  # train-mode forwards of the whole model so far
        self.handles = []
        self.rng = None  # where the RNG must be when the next draw starts

    def __enter__(self):
        self.handles.append(self.model.register_forward_pre_hook(self._model_pre))
        self.handles.append(self.model.register_forward_hook(self._model_post))
        for path, m in self.model.named_modules():
            if not isinstance(m, nn.modules.dropout._DropoutNd):
                continue
            if type(m) not in REPLAY_FN:
                self.handles.append(m.register_forward_pre_hook(_unsupported(path)))
                continue
            self.masks[path] = []
            self.handles.append(m.register_forward_pre_hook(self._pre(path)))
            self.handles.append(m.register_forward_hook(self._post(path)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []

    def modules(self):
        """[(path, kind, p)] of the modules that drew a mask."""
        found = dict(self.model.named_modules())
        return [(path, type(found[path]).__name__, found[path].p) for path, ms in self.masks.items() if ms]

    def io(self):
        """mask.<path> of the first train forward; mask_steps.<path> [forwards, ...] when there were several."""
        out = []
        for path, ms in self.masks.items():
            if ms:
                out.append((f'mask.{path}', ms[0]))
        for path, ms in self.masks.items():
            if len(ms) > 1:
                out.append((f'mask_steps.{path}', torch.stack(ms)))
        return out

    def _model_pre(self, model, inputs):
        if model.training:
            self.forwards += 1
            self.rng = torch.get_rng_state()

    def _model_post(self, model, inputs, output):
        if model.training and self.replay is None and not torch.equal(torch.get_rng_state(), self.rng):
            raise SystemExit(f'{type(model).__name__} draws random numbers outside nn.Dropout / nn.Dropout2d '
                             'modules (functional dropout?): those masks cannot be exported')

    def _pre(self, path):
        def hook(m, inputs):
            if not m.training or m.p == 0:
                return
            if len(self.masks[path]) >= self.forwards:
                raise SystemExit(f'dropout module {path!r} runs twice in one forward: its masks have no single name')
            if self.replay is None and not torch.equal(torch.get_rng_state(), self.rng):
                raise SystemExit(f'random numbers drawn before dropout module {path!r} outside nn.Dropout modules')
            self.pre = torch.get_rng_state()

        return hook

    def _post(self, path):
        def hook(m, inputs, output):
            if not m.training or m.p == 0:
                return None
            x = inputs[0]
            if self.replay is not None:
                mask = self.replay[path][len(self.masks[path])].to(x.dtype)
                self.masks[path].append(mask)
                return x * mask
            post = torch.get_rng_state()
            torch.set_rng_state(self.pre)
            with torch.no_grad():
                mask = REPLAY_FN[type(m)](torch.ones_like(x), m.p, True)
            if not torch.equal(torch.get_rng_state(), post):
                raise SystemExit(f'replaying dropout {path!r} drew a different amount of random numbers')
            torch.set_rng_state(post)
            if not torch.equal(output, x.detach() * mask):
                raise SystemExit(f'dropout {path!r}: the replayed mask does not reproduce the module output')
            self.masks[path].append(mask)
            self.rng = post
            return None

        return hook


def _unsupported(path):
    def hook(m, inputs):
        if m.training and m.p > 0:
            raise SystemExit(f'{path}: {type(m).__name__} masks are not exported (only nn.Dropout and nn.Dropout2d)')

    return hook
