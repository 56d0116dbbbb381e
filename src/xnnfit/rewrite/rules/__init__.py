"""The rewrite rules, one file each; RULES lists them in the order the engine tries them."""

from xnnfit.rewrite.rules.xr001_where_activation import WhereActivation
from xnnfit.rewrite.rules.xr002_fold_shapes import FoldShapes
from xnnfit.rewrite.rules.xr003_broadcast_upsample import BroadcastUpsample
from xnnfit.rewrite.rules.xr004_split_concat import SplitConcat
from xnnfit.rewrite.rules.xr009_float_depthwise import FloatDepthwise

RULES = {r.id: r for r in (FoldShapes(), WhereActivation(), BroadcastUpsample(), SplitConcat(), FloatDepthwise())}

__all__ = ["RULES"]
