"""DaRec on any model named by the config key `backbone` (e.g. RecBole's LightGCN or NGCF)."""
from recbole_darec.model.composed.zoo import ZooBackbone
from recbole_darec.model.composed.darec import DaRecMixin


class DaRec(DaRecMixin, ZooBackbone):
    """DaRec on any model named by the config key `backbone` (e.g. RecBole's LightGCN or NGCF)."""
