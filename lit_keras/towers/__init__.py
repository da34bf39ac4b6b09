"""Image and text towers, each usable alone, each in one of the paper's states L / U / u."""
from lit_keras.towers.base import LOCKED, SCRATCH, STATES, UNLOCKED, Tower, parse_setting
from lit_keras.towers.image import HubImageTower, ViTImageTower
from lit_keras.towers.precomputed import PrecomputedImageTower
from lit_keras.towers.text import BertTextTower, HubBertTextTower
from lit_keras.towers.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

__all__ = [
    "LOCKED", "UNLOCKED", "SCRATCH", "STATES", "Tower", "parse_setting",
    "HubImageTower", "ViTImageTower", "PrecomputedImageTower",
    "HubBertTextTower", "BertTextTower",
    "WordPieceTokenizer", "SentencePieceTokenizer",
]
