"""Top-k recommendations from a checkpoint, including items the model has never seen (docs/recommend.md).

    python -m recbole_darec.recommend --checkpoint=saved/X.pth --users=196,186 [--k=10] [--new-items=FILE]
        [--out=FILE.csv] [--no-mask] [--name_field=FIELD]

``--users`` are the dataset's own user tokens (ml-100k: ``196``). Items a user interacted with anywhere in the
dataset (train, valid and test) are left out unless ``--no-mask``. ``--new-items`` names a ``.item`` file of items
the model was not trained on: their text is built with the dataset's item template, encoded with the checkpoint's
encoder settings and mapped into the CF space by the model's head (``SemanticMixin.cold_item_embeddings``); they are
ranked together with the known items. A mistake in the input is one line and exit status 2, and nothing is written.
"""
import argparse
import csv
import math
from pathlib import Path

import torch
from recbole.data.interaction import Interaction

from recbole_darec.atomic import atomic_path
from recbole_darec.checkpoints import load_checkpoint
from recbole_darec.cli_errors import UserError, listing, run_cli
from recbole_darec.model import get_model
from recbole_darec.model.composed.semantic import SemanticMixin, no_cold_map_message
from recbole_darec.semantic.cache import manifest_path, read_manifest
from recbole_darec.semantic.new_items import dataset_item_file, read_new_items
from recbole_darec.semantic.profiles import profile_settings, template_fields
from recbole_darec.semantic.settings import SemanticSettings
from recbole_darec.single_run import reload
from recbole_darec.writable import check_writable

ROW_FIELDS = ("user", "rank", "item", "name", "score", "new")
# The reload is quiet: no progress bars, RecBole's log at WARNING (it has no handler here but Python's last resort).
QUIET = {"state": "WARNING", "show_progress": False, "semantic_show_progress": False}
NO_LLM_SIDE = (" (the checkpoint has no LLM side; an aligned model such as DaRecLightGCN or RLMRecConLightGCN "
               "can score new items)")


def check_k(k):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"--k={k!r}: must be a whole number >= 1")
    return k


def check_llm_side(model_name, model_class):
    """Refuse a model with no LLM side before anything is loaded."""
    if not issubclass(model_class, SemanticMixin):
        raise UserError(no_cold_map_message(model_name, NO_LLM_SIDE))


def default_name_field(config, item_types):
    """The first field the dataset's item template names, else the ``.item`` file's first token_seq field."""
    named = [f for f in template_fields(profile_settings(config)["profile_item_template"]) if f in item_types]
    seqs = [f for f, t in item_types.items() if t == "token_seq" and f != config["ITEM_ID_FIELD"]]
    return (named or seqs or [None])[0]


class Recommender:
    """A checkpoint loaded once (:func:`load_recommender`), asked for recommendations any number of times."""

    def __init__(self, path, config, model, dataset):
        self.path, self.config, self.model, self.dataset = str(path), config, model.eval(), dataset
        self.model_name, self.dataset_name = config["model"], config["dataset"]
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field
        self.item_frame, self.item_types = dataset_item_file(config)

    def user_ids(self, users):
        """Internal ids of the dataset's user tokens (duplicates dropped, order kept; a string: comma-separated)."""
        users = users.split(",") if isinstance(users, str) else users
        tokens = list(dict.fromkeys(str(u).strip() for u in users))
        if not tokens or tokens == [""]:
            raise UserError("--users: give at least one user id of the dataset, e.g. --users=196,186")
        table = self.dataset.field2token_id[self.uid_field]
        unknown = [t for t in tokens if t not in table or t == "[PAD]"]
        if unknown:
            raise UserError(f"--users: unknown user id(s) {listing(unknown)} ({len(unknown)} of {len(tokens)}) in "
                            f"dataset {self.dataset_name}; use the ids of its {self.uid_field} field")
        return tokens, [table[t] for t in tokens]

    def name_field(self, name_field=None):
        if self.item_types is None:
            if name_field:
                raise UserError(f"--name_field={name_field}: dataset {self.dataset_name} has no .item file")
            return None
        if name_field is None:
            return default_name_field(self.config, self.item_types)
        if name_field not in self.item_types:
            raise UserError(f"--name_field={name_field}: not a field of {self.dataset_name}.item (fields: "
                            f"{', '.join(self.item_types)})")
        return name_field

    def encode_new_items(self, path):
        """(tokens, frame, rows in the scoring space) of the items of ``path``; refuses a model with no text map."""
        check_llm_side(self.model_name, type(self.model))
        self.model.cold_item_embeddings(torch.zeros(0, self.model.semantic_encoder_dim))  # a refusal comes first
        new = read_new_items(path, self.config)
        encoder = _item_encoder(self.config, self.model.semantic_encoder_dim)
        encoded = torch.as_tensor(encoder.encode(new.texts, show_progress=False))
        return new.tokens, new.frame, self.model.cold_item_embeddings(encoded)

    @torch.no_grad()
    def recommend(self, users, k=10, new_items=None, mask_seen=True, name_field=None):
        """Each user's top ``k`` items, best first.

        Args:
            users (Iterable[str] | str): the dataset's user tokens (ml-100k: ``"196"``), or one comma-separated
                string.
            k (int): items per user (fewer where fewer are left after masking).
            new_items (str | Path | None): a ``.item`` file of items the model was not trained on.
            mask_seen (bool): leave out every item the user interacted with (train, valid and test).
            name_field (str | None): the ``.item`` field shown as the name (default: :func:`default_name_field`).

        Returns:
            list[dict]: one per recommendation, keys ``ROW_FIELDS``: user and item tokens, rank (1 = best), name,
            score (the model's score, a float) and new (True for an item of ``new_items``).
        """
        k = check_k(k)
        tokens, uids = self.user_ids(users)
        field = self.name_field(name_field)
        names = {}
        if field is not None:
            names = dict(zip(self.item_frame[self.iid_field], self.item_frame[field]))
        scores = self._known_scores(uids, mask_seen)
        item_tokens = [str(t) for t in self.dataset.field2id_token[self.iid_field]]  # index = internal id
        n_known = len(item_tokens)
        if new_items is not None:
            new_tokens, frame, cold = self.encode_new_items(new_items)
            if field is not None and field not in frame.columns:
                raise UserError(f"--new-items: {new_items} has no {field} field to name its items by "
                                "(--name_field)")
            if field is not None:
                names.update(zip(frame[self.iid_field], frame[field]))
            user_all, _ = self.model._eval_embeddings()
            scores = torch.cat([scores, self.model.cold_scores(user_all[uids], cold).float().cpu()], dim=1)
            item_tokens += new_tokens
        values, order = torch.sort(scores, dim=1, descending=True, stable=True)
        rows = []
        for user, user_values, user_order in zip(tokens, values[:, :k].tolist(), order[:, :k].tolist()):
            for rank, (score, index) in enumerate(((s, i) for s, i in zip(user_values, user_order)
                                                   if math.isfinite(s)), start=1):
                item = item_tokens[index]
                rows.append({"user": user, "rank": rank, "item": item, "name": names.get(item, ""),
                             "score": score, "new": index >= n_known})
        return rows

    def _known_scores(self, uids, mask_seen):
        """(n users, n items) scores of the known items; [PAD] and (``mask_seen``) seen items at -inf."""
        ids = torch.as_tensor(uids, dtype=torch.long)
        query = Interaction({self.uid_field: ids}).to(self.config["device"])
        scores = self.model.full_sort_predict(query).view(len(uids), -1).float().cpu().clone()
        scores[:, 0] = -math.inf  # [PAD]
        if mask_seen:  # the dataset before its split: train, valid and test interactions
            inter = self.dataset.inter_feat
            row_of = torch.full((self.dataset.user_num,), -1, dtype=torch.long)
            row_of[ids] = torch.arange(len(ids))
            rows = row_of[inter[self.uid_field].long()]
            hit = rows >= 0
            scores[rows[hit], inter[self.iid_field].long()[hit]] = -math.inf
        return scores


def _item_encoder(config, width):
    """The encoder the checkpoint's item tables were made with (its ``semantic_*`` settings), after checking that
    those tables are that encoder's rows of text generated from the ``.item`` file, as new items' will be."""
    settings, ds = SemanticSettings.from_config(config), config["dataset"]
    control = settings.control()
    if control is not None:
        raise UserError(f"--new-items: the checkpoint was trained with semantic_text_control={control['control']}: "
                        "its item rows are not its items' own text, so new items' text cannot be placed among them")
    entry = read_manifest(manifest_path(Path(config["data_path"]), ds)).get("item") or {}
    if entry.get("source") != "generated":
        raise UserError(f"--new-items: {ds}'s item embeddings come from {entry.get('source') or 'a file'}, not "
                        f"from text built from {ds}.item, so new items' text cannot be encoded as theirs was")
    identity = settings.encoder_identity()
    if entry.get("encoder") != identity or entry.get("dim") != width:
        raise UserError(f"--new-items: {ds}'s item embeddings were made by {entry.get('encoder')}, not by the "
                        f"checkpoint's semantic_encoder ({identity['encoder']}): rebuild them with the checkpoint's "
                        "settings")
    from transformers.utils import logging as hf_logging  # lazy: transformers, only for --new-items

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar; the caller's setting is restored
    try:
        return settings.text_encoder()
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def load_recommender(checkpoint):
    """A :class:`Recommender` for a plugin checkpoint (read with torch's safe loader; the run's data rebuilt)."""
    _, config, built = reload(checkpoint, overrides=QUIET)
    return Recommender(checkpoint, config, built.model, built.dataset)


def recommend(checkpoint, users, k=10, new_items=None, mask_seen=True, name_field=None):
    """Each user's top ``k`` items from a checkpoint: a list of dicts (:meth:`Recommender.recommend`)."""
    check_k(k)
    return load_recommender(checkpoint).recommend(users, k, new_items, mask_seen, name_field)


def write_csv(path, rows):
    """``rows`` as CSV (``ROW_FIELDS``), written to a temp file beside ``path`` and renamed over it."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def format_rows(rows, users):
    """The printed table: per user its ranks, items, names, scores and new marks."""
    lines = []
    for user in users:
        mine = [r for r in rows if r["user"] == user]
        lines.append(f"user {user}" + ("" if mine else ": no item left to recommend"))
        width = max([len(r["item"]) for r in mine] + [4])
        for r in mine:
            name = r["name"] if len(r["name"]) <= 48 else r["name"][:47] + "…"
            lines.append(f"  {r['rank']:>3}  {r['item']:<{width}}  {name:<48}  {r['score']:>9.4f}"
                         f"{'  new' if r['new'] else ''}".rstrip())
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m recbole_darec.recommend", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a .pth file saved by this plugin")
    parser.add_argument("--users", required=True, help="comma-separated user ids of the dataset, e.g. 196,186")
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--new-items", "--new_items", dest="new_items", default=None,
                        help="a .item file of items the model was not trained on")
    parser.add_argument("--out", default=None, help="also write the rows to this CSV file")
    parser.add_argument("--no-mask", "--no_mask", dest="no_mask", action="store_true",
                        help="keep the items each user interacted with (train, valid, test)")
    parser.add_argument("--name_field", "--name-field", dest="name_field", default=None,
                        help="the .item field shown as the name (default: the item template's first field)")
    args = parser.parse_args(argv)
    # what needs no data load is refused before the (tens of seconds) reload
    check_k(args.k)
    users = [u.strip() for u in args.users.split(",") if u.strip()]
    if not users:
        raise UserError("--users: give at least one user id of the dataset, e.g. --users=196,186")
    stored = load_checkpoint(args.checkpoint)  # a missing or foreign file: one line
    if args.new_items is not None:
        check_llm_side(stored["model"], get_model(stored["model"]))
        if not Path(args.new_items).is_file():
            raise UserError(f"--new-items: {args.new_items} does not exist")
    if args.out is not None:
        if Path(args.out).is_dir():
            raise UserError(f"--out={args.out} is a folder; name a .csv file")
        check_writable(Path(args.out).absolute().parent, "--out folder")
    recommender = load_recommender(args.checkpoint)
    rows = recommender.recommend(users, args.k, args.new_items, not args.no_mask, args.name_field)
    new = f", new items from {args.new_items}" if args.new_items else ""
    print(f"{recommender.model_name} on {recommender.dataset_name}, checkpoint {args.checkpoint}: top {args.k} per "
          f"user, {'seen items shown' if args.no_mask else 'items seen in train/valid/test masked'}{new}")
    print(format_rows(rows, list(dict.fromkeys(users))))
    if args.out is not None:
        write_csv(args.out, rows)
        print(f"{len(rows)} rows written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, "python -m recbole_darec.recommend"))
