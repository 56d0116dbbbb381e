"""The rewrite rules, one file each; RULES lists them in the order the engine tries them."""

from xnnfit.rewrite.rules.xr001_where_activation import WhereActivation
from xnnfit.rewrite.rules.xr002_fold_shapes import FoldShapes
from xnnfit.rewrite.rules.xr003_broadcast_upsample import BroadcastUpsample
from xnnfit.rewrite.rules.xr004_split_concat import SplitConcat
from xnnfit.rewrite.rules.xr005_strided_slice import StridedSubsample
from xnnfit.rewrite.rules.xr006_pow_sign import PowSign
from xnnfit.rewrite.rules.xr007_log_softmax import LogSoftmax
from xnnfit.rewrite.rules.xr008_l2_norm import L2Norm
from xnnfit.rewrite.rules.xr009_float_depthwise import FloatDepthwise
from xnnfit.rewrite.rules.xr010_gather_const import GatherConst
from xnnfit.rewrite.rules.xr011_freeze_variables import FreezeVariables
from xnnfit.rewrite.rules.xr013_float_masks import FloatMasks
from xnnfit.rewrite.rules.xr014_pack import PackConcat
from xnnfit.rewrite.rules.xr015_composite_attributes import CompositeAttributes

RULES = {
    r.id: r
    for r in (
        FreezeVariables(),
        FoldShapes(),
        WhereActivation(),
        BroadcastUpsample(),
        SplitConcat(),
        StridedSubsample(),
        FloatDepthwise(),
        PowSign(),
        LogSoftmax(),
        L2Norm(),
        GatherConst(),
        FloatMasks(),
        PackConcat(),
        CompositeAttributes(),
    )
}

__all__ = ["RULES"]
