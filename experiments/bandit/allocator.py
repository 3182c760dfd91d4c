"""The allocator facade used by serving: register campaigns, choose variants
(logged before they are returned), ingest rewards, learn, hot-reload.

One `Allocator` per process. Campaign configuration lives in the decision
log (so a variant added or a kill switch thrown by one process is seen by
every other process on its next request, no restart); the learned model
lives in versioned snapshots (`reload()` picks up the newest live one).
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .decision_log import LEARN_FROM, DecisionBatch, DecisionLog, SentMarks, UnknownDecisionError
from .features import VariantEncoder, context_matrix, joint_features
from .learner import DEFAULT_REWARD_RANGE, RefusedUpdate, check_posterior, reward_range
from .linear import LinearPosterior
from .policies import ArmSet, Scorer, apply_floor, make_policy, sample_actions
from .randomness import contact_uniforms, decision_keys, new_decision_ids, string_key, uniforms
from .snapshots import CampaignState, Snapshot, SnapshotStore
from .timeutil import from_micros, micros_array, parse_duration, to_micros

logger = logging.getLogger("inbox.bandit")
MODES = ("policy", "holdout", "kill_switch", "apprentice")
MAX_REWARD_MAGNITUDE = 1e9   # a declared range stays within +-1e9 (the learned model is scored in float32)
CLOCK_ALLOWANCE_US = 1_000_000  # providers date events in whole seconds: a reward may read up to 1 s early
TOPIC = re.compile(r"[a-z0-9_]{1,100}")  # a consent topic, as in the campaign file (`sending.campaign`)
REWARD_EVENTS = ("delivered", "open", "click", "conversion", "unsubscribe", "bounce", "complaint")


class PolicyStateError(RuntimeError):
    """The loaded policy cannot give a valid probability vector (a server fault, not an input error)."""


@dataclass
class _CampaignCache:
    """Per-process view of one campaign at one config version."""

    config_version: int
    config: dict
    Z: np.ndarray            # (n_slots, f) variant features by slot
    slot_of: dict[int, int]  # variant id -> slot
    active: list[int]        # active variant ids, registration order
    scorers: dict = field(default_factory=dict)  # (policy_version, eligible) -> Scorer
    checked_at: float = 0.0  # time.monotonic() of the last version check


class Allocator:
    def __init__(self, log: DecisionLog, snapshots: SnapshotStore, config_ttl: float = 0.5):
        """`config_ttl`: seconds a campaign's configuration is trusted before the log is
        asked again (changes made through this instance apply at once; changes by other
        processes, e.g. a kill switch, within `config_ttl`)."""
        self.log = log
        self.config_ttl = config_ttl
        self.snapshots = snapshots
        self._lock = threading.RLock()
        self._cache: dict[str, _CampaignCache] = {}
        self._snapshot = Snapshot(version=0)
        self.reload_refused: tuple[int, str | None] = (0, None)  # (version, why) of the last snapshot not loaded
        self._refused_versions: set[int] = set()
        self.learn_refusals: dict[str, str] = {}  # campaign -> why, from the last learn()
        self.learn_unsent: dict[str, int] = {}    # campaign -> closed decisions left out as never mailed
        self.reload()

    @classmethod
    def open(cls, bandit_dir: str | Path, config_ttl: float = 0.5) -> "Allocator":
        """SQLite decision log `decisions.db` and snapshots under `bandit_dir`, or both in the PostgreSQL
        database `INBOX_DECISION_LOG` names (`backends.open_log_and_snapshots`)."""
        from .backends import open_log_and_snapshots

        return cls(*open_log_and_snapshots(bandit_dir), config_ttl=config_ttl)

    def close(self) -> None:
        self.log.close()

    @property
    def policy_version(self) -> int:
        return self._snapshot.version

    # campaigns ---------------------------------------------------------------
    def register_campaign(self, campaign_id: str, variants: pd.DataFrame, context_features: list[str],
                          reward_event: str = "click", wait_window: str | float = "48h",
                          policy: str = "lin_ts", floor: float = 0.02, holdout_share: float = 0.0,
                          control_variant: int | None = None, *, policy_params: dict | None = None,
                          default_reward: float = 0.0, aggregation: str = "first", ridge: float = 1.0,
                          apprentice: bool = False, apprentice_baseline: str = "control",
                          reward_value: str = "count", reward_range: tuple[float, float] = DEFAULT_REWARD_RANGE,
                          topic: str | None = None, learn_from: str = "all") -> None:
        """Create (or re-configure) a campaign. Variants: `content_id` + feature columns.

        `reward_event` is the event type that pays (click by default); `reward_value`
        'count' pays 1 per event, 'value' pays the event's `value` (e.g. revenue of a
        conversion). `reward_range` (lo, hi) is the declared range of one reward value
        (default [0, 1]): a reward outside it is refused on arrival; `default_reward`
        must lie in it. `topic` is the consent topic of the campaign's mail: the server
        refuses contacts who opted out of it (`serving.decide.mailable`). `learn_from`
        'all' (default) learns from every closed decision, a decision without a reward as
        `default_reward`; 'sent' only from decisions marked sent (`mark_sent`) or rewarded,
        so a decision logged but never mailed is not learned as "sent and ignored"
        (`learn` counts those it leaves out).
        """
        if not campaign_id or not isinstance(campaign_id, str):
            raise ValueError("campaign_id: must be a non-empty string")
        if topic is not None and not (isinstance(topic, str) and TOPIC.fullmatch(topic)):
            raise ValueError(f"topic: expected 1-100 characters of a-z, 0-9 and _, got {topic!r}")
        _check_variants(variants)
        make_policy(policy, **(policy_params or {}))  # validates name and params
        if not 0.0 <= floor < 1.0:
            raise ValueError("floor: must be in [0, 1)")
        if not 0.0 <= holdout_share < 1.0:
            raise ValueError("holdout_share: must be in [0, 1)")
        if aggregation not in ("first", "sum"):
            raise ValueError("aggregation: expected 'first' or 'sum'")
        if learn_from not in LEARN_FROM:
            raise ValueError(f"learn_from: expected one of {LEARN_FROM}, got {learn_from!r}")
        ids = variants["content_id"].astype(int).tolist()
        if holdout_share > 0 and control_variant is None:
            raise ValueError("control_variant: required when holdout_share > 0")
        if control_variant is not None and int(control_variant) not in ids:
            raise ValueError(f"control_variant: {control_variant} is not among the variants")
        if reward_event not in REWARD_EVENTS:
            raise ValueError(f"reward_event: expected one of {REWARD_EVENTS}, got {reward_event!r}")
        if reward_value not in ("count", "value"):
            raise ValueError("reward_value: expected 'count' or 'value'")
        if apprentice_baseline not in ("control", "uniform"):
            raise ValueError("apprentice_baseline: expected 'control' or 'uniform'")
        if apprentice and apprentice_baseline == "control" and control_variant is None:
            raise ValueError("control_variant: required for apprentice mode with the control baseline")
        lo, hi = _check_reward_range(reward_range)
        if not lo <= float(default_reward) <= hi:
            raise ValueError(f"default_reward: {default_reward!r} is outside reward_range [{lo:g}, {hi:g}]")
        encoder = VariantEncoder.fit(variants)
        Z = encoder.encode(variants)
        config = {
            "context_features": [str(c) for c in context_features],
            "variant_encoder": encoder.to_dict(),
            "variants": {str(v): {"slot": i, "z": Z[i].tolist(), "active": True} for i, v in enumerate(ids)},
            "n_slots": len(ids),
            "policy": policy, "policy_params": policy_params or {},
            "floor": float(floor), "holdout_share": float(holdout_share),
            "control_variant": None if control_variant is None else int(control_variant),
            "reward_event": reward_event, "reward_value": reward_value, "wait_window_us": parse_duration(wait_window),
            "default_reward": float(default_reward), "reward_range": [lo, hi], "aggregation": aggregation,
            "ridge": float(ridge),
            "kill_switch": None, "apprentice": bool(apprentice), "apprentice_baseline": apprentice_baseline,
            "topic": topic, "learn_from": learn_from,
        }
        self._save(campaign_id, config)

    def add_variant(self, campaign_id: str, variants: pd.DataFrame) -> None:
        """Add variants (content_id + the campaign's feature columns); a retired id is re-activated."""
        _check_variants(variants)
        _, config = self.log.campaign(campaign_id)
        encoder = VariantEncoder.from_dict(config["variant_encoder"])
        Z = encoder.encode(variants)
        for vid, z in zip(variants["content_id"].astype(int).tolist(), Z):
            entry = config["variants"].get(str(vid))
            if entry is None:
                config["variants"][str(vid)] = {"slot": config["n_slots"], "z": z.tolist(), "active": True}
                config["n_slots"] += 1
            else:
                entry["active"] = True
        self._save(campaign_id, config)

    def retire_variant(self, campaign_id: str, variant: int) -> None:
        _, config = self.log.campaign(campaign_id)
        entry = config["variants"].get(str(int(variant)))
        if entry is None:
            raise ValueError(f"variant: {variant} is not a variant of campaign {campaign_id!r}")
        if variant in (config["control_variant"], config["kill_switch"]):
            raise ValueError(f"variant: {variant} is the control or kill-switch variant; change that first")
        entry["active"] = False
        if not any(v["active"] for v in config["variants"].values()):
            raise ValueError("variant: cannot retire the last active variant")
        self._save(campaign_id, config)

    def kill_switch(self, campaign_id: str, variant: int | None) -> None:
        """Force every decision of the campaign to `variant` (None lifts the switch)."""
        self._update(campaign_id, kill_switch=None if variant is None else int(variant),
                     _active_check=variant)

    def set_apprentice(self, campaign_id: str, enabled: bool, baseline: str | None = None) -> None:
        """Apprentice mode: the baseline serves, the policy's choice is only logged."""
        changes = {"apprentice": bool(enabled)}
        if baseline is not None:
            if baseline not in ("control", "uniform"):
                raise ValueError("baseline: expected 'control' or 'uniform'")
            changes["apprentice_baseline"] = baseline
        self._update(campaign_id, **changes)

    def set_learn_from(self, campaign_id: str, learn_from: str) -> str:
        """Switch what the campaign learns from ('all' or 'sent', see `register_campaign`); the previous value.

        Takes effect at the next `learn`: decisions already folded stay folded. Before switching to 'sent',
        mark the decisions that were mailed but not yet learned (`mark_sent`), or they are left out."""
        if learn_from not in LEARN_FROM:
            raise ValueError(f"learn_from: expected one of {LEARN_FROM}, got {learn_from!r}")
        _, config = self.log.campaign(campaign_id)
        before = config.get("learn_from", "all")
        self._update(campaign_id, learn_from=learn_from)
        return before

    def set_guardrails(self, campaign_id: str, *, floor: float | None = None, holdout_share: float | None = None,
                       control_variant: int | None = None) -> None:
        changes = {}
        if floor is not None:
            if not 0.0 <= floor < 1.0:
                raise ValueError("floor: must be in [0, 1)")
            changes["floor"] = float(floor)
        if holdout_share is not None:
            if not 0.0 <= holdout_share < 1.0:
                raise ValueError("holdout_share: must be in [0, 1)")
            changes["holdout_share"] = float(holdout_share)
        if control_variant is not None:
            changes["control_variant"] = int(control_variant)
        self._update(campaign_id, **changes, _active_check=control_variant)

    def _update(self, campaign_id: str, _active_check=None, **changes) -> None:
        _, config = self.log.campaign(campaign_id)
        if _active_check is not None:
            entry = config["variants"].get(str(int(_active_check)))
            if entry is None or not entry["active"]:
                raise ValueError(f"variant: {_active_check} is not an active variant of {campaign_id!r}")
        config.update(changes)
        if config["holdout_share"] > 0 and config["control_variant"] is None:
            raise ValueError("control_variant: required when holdout_share > 0")
        if config["apprentice"] and config["apprentice_baseline"] == "control" and config["control_variant"] is None:
            raise ValueError("control_variant: required for apprentice mode with the control baseline")
        self._save(campaign_id, config)

    def _save(self, campaign_id: str, config: dict) -> None:
        self.log.save_campaign(campaign_id, config)
        self._cache.pop(campaign_id, None)  # this process sees its own change at once

    def _campaign(self, campaign_id: str) -> _CampaignCache:
        cached = self._cache.get(campaign_id)
        now = time.monotonic()
        if cached is not None and now - cached.checked_at < self.config_ttl:
            return cached
        version = self.log.campaign_version(campaign_id)
        if cached is not None and cached.config_version == version:
            cached.checked_at = now
            return cached
        version, config = self.log.campaign(campaign_id)
        entries = config["variants"]
        Z = np.zeros((config["n_slots"], len(next(iter(entries.values()))["z"])))
        slot_of = {}
        for vid, entry in entries.items():
            Z[entry["slot"]] = entry["z"]
            slot_of[int(vid)] = entry["slot"]
        active = [int(v) for v, e in sorted(entries.items(), key=lambda kv: kv[1]["slot"]) if e["active"]]
        cached = _CampaignCache(version, config, Z, slot_of, active, checked_at=now)
        self._cache[campaign_id] = cached
        return cached

    def variants(self, campaign_id: str) -> list[int]:
        """Active variant ids of a campaign."""
        return list(self._campaign(campaign_id).active)

    # model -------------------------------------------------------------------
    def _posterior(self, campaign_id: str, cache: _CampaignCache) -> LinearPosterior:
        d = 1 + len(cache.config["context_features"])
        f = cache.Z.shape[1]
        state = self._snapshot.campaigns.get(campaign_id)
        if state is None:
            return LinearPosterior.prior(d * (f + cache.config["n_slots"]), cache.config["ridge"])
        post = state.posterior
        missing = d * (f + cache.config["n_slots"]) - post.dim
        if missing > 0:  # variants added after this snapshot: their own blocks start at the prior
            post = LinearPosterior(post.A.copy(), post.b.copy(), post.n, post.ridge)
            post.grow(missing)
        return post

    def _scorer(self, campaign_id: str, cache: _CampaignCache, eligible: tuple[int, ...]) -> Scorer:
        key = (self._snapshot.version, eligible)
        scorer = cache.scorers.get(key)
        if scorer is None:
            cfg = cache.config
            policy = make_policy(cfg["policy"], **cfg["policy_params"])
            slots = np.array([cache.slot_of[v] for v in eligible])
            arms = ArmSet(cache.Z[slots], slots, cfg["n_slots"], 1 + len(cfg["context_features"]))
            seed = string_key(f"{campaign_id}:{self._snapshot.version}")
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # small dense algebra: one BLAS thread, no oversubscription
                scorer = policy.prepare(self._posterior(campaign_id, cache), arms, seed)
            if len(cache.scorers) > 64:
                cache.scorers.clear()
            cache.scorers[key] = scorer
        return scorer

    def reload(self) -> bool:
        """Load the newest live snapshot if it is newer than the one in use.

        A snapshot whose posterior fails `learner.check_posterior` (e.g. written by a
        learner that did not check) is not loaded (nor read again): the newest good one
        newer than the one in use is loaded instead, or the one in use keeps serving;
        `reload_refused` says which version was skipped and why.
        """
        current = self._snapshot.version
        for version, _ in reversed(self.snapshots.versions(live_only=True)):
            if version <= current:
                return False
            if version in self._refused_versions:
                continue
            snapshot = self.snapshots.read(version)
            why = _unusable(snapshot)
            if why is None:
                with self._lock:
                    self._snapshot = snapshot
                return True
            self._refused_versions.add(version)
            self.reload_refused = (version, f"snapshot v{version}, {why}")
            logger.warning("reload: not loading %s", self.reload_refused[1])
        return False

    # decisions ---------------------------------------------------------------
    def decide(self, campaign_id: str, contact_ids, context: pd.DataFrame | np.ndarray | None = None,
               now=None, exclude=None, decision_ids: list[str] | None = None) -> DecisionBatch:
        """Choose a variant per contact; the batch is in the decision log when this returns."""
        cache = self._campaign(campaign_id)
        cfg = cache.config
        contact_ids = np.asarray(contact_ids, dtype=np.int64).reshape(-1)
        n = len(contact_ids)
        if exclude is None:
            eligible = tuple(cache.active)
        else:
            excluded = {int(v) for v in np.atleast_1d(exclude)}
            eligible = tuple(v for v in cache.active if v not in excluded)
        if not eligible:
            raise ValueError("exclude: no eligible variant left for this request")
        X = context_matrix(context, cfg["context_features"], n)
        now_us = to_micros(now, "now")
        if decision_ids is None:
            decision_ids, keys = new_decision_ids(n)
        else:
            if len(decision_ids) != n:
                raise ValueError("decision_ids: one per contact")
            keys = decision_keys(list(decision_ids))
        K = len(eligible)
        with self._lock:
            version = self._snapshot.version
            try:
                scorer = self._scorer(campaign_id, cache, eligible)
            except (ValueError, np.linalg.LinAlgError) as exc:  # the loaded posterior, not the request, is bad
                raise PolicyStateError(f"campaign {campaign_id!r}: policy v{version} cannot be used ({exc}); "
                                       "no decision logged") from exc
            policy_probs = apply_floor(scorer.probabilities(X), cfg["floor"])
        if not np.isfinite(policy_probs).all():  # never log (or serve) a decision drawn from NaN probabilities
            raise PolicyStateError(f"campaign {campaign_id!r}: policy v{version} gives non-finite probabilities; "
                                   "no decision logged")
        probs = policy_probs
        mode = np.full(n, "policy", dtype=object)
        kill = cfg["kill_switch"]
        if kill is not None or cfg["apprentice"] or cfg["holdout_share"] > 0:
            position = {v: i for i, v in enumerate(eligible)}
        if kill is not None:
            if kill not in position:
                raise ValueError(f"exclude: the kill-switch variant {kill} must stay eligible")
            probs = _one_hot(n, K, position[kill])
            mode[:] = "kill_switch"
        elif cfg["apprentice"]:
            if cfg["apprentice_baseline"] == "uniform":
                probs = np.full((n, K), 1.0 / K)
            else:
                probs = _control_probs(cfg, position, n, K)
            mode[:] = "apprentice"
        elif cfg["holdout_share"] > 0:
            held = contact_uniforms(campaign_id, contact_ids) < cfg["holdout_share"]
            if held.any():
                probs = policy_probs.copy()
                probs[held] = _control_probs(cfg, position, 1, K)
                mode[held] = "holdout"
        idx = sample_actions(probs, uniforms(keys, 0))
        policy_idx = idx if probs is policy_probs else sample_actions(policy_probs, uniforms(keys, 1))
        elig = np.asarray(eligible, dtype=np.int64)
        batch = DecisionBatch(
            decision_id=list(decision_ids), campaign_id=campaign_id, decided_at=now_us,
            contact_id=contact_ids, eligible=elig, context=X[:, 1:], probabilities=probs,
            variant=elig[idx], propensity=probs[np.arange(n), idx], policy_version=version,
            mode=mode, policy_choice=elig[policy_idx],
        )
        self.log.log_decisions(batch, window_us=cfg["wait_window_us"])
        return batch

    def choose(self, campaign_id: str, contact_ids, context: pd.DataFrame | np.ndarray | None = None,
               now=None, exclude=None, decision_ids: list[str] | None = None) -> pd.DataFrame:
        """DataFrame[decision_id, contact_id, variant, propensity, probabilities, policy_version]."""
        b = self.decide(campaign_id, contact_ids, context, now, exclude, decision_ids)
        return pd.DataFrame({
            "decision_id": b.decision_id, "contact_id": b.contact_id, "variant": b.variant,
            "propensity": b.propensity, "probabilities": [list(p) for p in b.probabilities.tolist()],
            "policy_version": b.policy_version, "mode": b.mode,
        })

    # rewards -----------------------------------------------------------------
    def reward(self, decision_id: str, reward: float, occurred_at, event_id) -> str:
        """'accepted' | 'duplicate' | 'late'; raises UnknownDecisionError for an unknown id and
        ValueError naming the field (`reward`, `occurred_at`) for a refused reward; both are
        kept in the audit table."""
        refusals: list[str] = []
        status = self.rewards([decision_id], [reward], [occurred_at], [event_id], refusals=refusals)[0]
        if status == "unknown":
            raise UnknownDecisionError(
                f"decision_id: unknown decision {decision_id!r} (reward rejected, kept in the audit table)")
        if status == "rejected":
            raise ValueError(f"{refusals[0]} (reward rejected, kept in the audit table)")
        return status

    def rewards(self, decision_ids, rewards, occurred_at, event_ids, now=None,
                refusals: list[str] | None = None) -> list[str]:
        """Batch form of `reward`: per row 'accepted' | 'duplicate' | 'late' | 'unknown' | 'rejected'.

        Nothing outside the process is trusted: a reward that is not finite, lies outside its
        campaign's declared `reward_range`, or is dated before its decision (beyond a 1 s
        allowance for whole-second provider timestamps) is 'rejected'; unknown ids are
        'unknown'. Both are kept in the `reward_audit` table with the reason (appended to
        `refusals` when given), never learned from.
        """
        rewards = np.asarray(rewards, dtype=float)
        if not (len(decision_ids) == len(rewards) == len(occurred_at) == len(event_ids)):
            raise ValueError("rewards: decision_ids, rewards, occurred_at and event_ids must have the same length")
        occurred = micros_array(occurred_at, "occurred_at")
        ranges: dict[str, tuple[float, float]] = {}

        def validate(campaign_id: str, reward: float, occurred_us: int, decided_us: int) -> str | None:
            if campaign_id not in ranges:
                ranges[campaign_id] = reward_range(self._campaign(campaign_id).config)
            lo, hi = ranges[campaign_id]
            why = None
            if not math.isfinite(reward):
                why = f"reward: must be a finite number, got {reward!r}"
            elif not lo <= reward <= hi:
                why = f"reward: {reward!r} is outside the campaign's declared range [{lo:g}, {hi:g}]"
            elif occurred_us < decided_us - CLOCK_ALLOWANCE_US:
                why = (f"occurred_at: {from_micros(occurred_us).isoformat()} is before the decision it rewards"
                       f" ({from_micros(decided_us).isoformat()})")
            if why is not None and refusals is not None:
                refusals.append(why)
            return why

        return self.log.add_rewards([str(d) for d in decision_ids], rewards, occurred,
                                    [str(e) for e in event_ids], to_micros(now, "now"), validate=validate)

    def mark_sent(self, decision_ids, sent_at=None) -> SentMarks:
        """Record that these decisions were mailed (`sent_at`: one time or one per id; default now), what a
        campaign with `learn_from='sent'` learns from. Idempotent; ids never logged are not marked and
        come back in `unknown`."""
        if isinstance(decision_ids, str):
            raise ValueError("decision_ids: expected a list of decision ids, got one string")
        ids = list(decision_ids)
        bad = next((d for d in ids if not isinstance(d, str) or not 0 < len(d) <= 100), None)
        if bad is not None:
            raise ValueError(f"decision_ids: expected non-empty strings of at most 100 characters, got {bad!r}")
        when = (to_micros(sent_at, "sent_at") if sent_at is None or np.ndim(sent_at) == 0
                else micros_array(sent_at, "sent_at"))
        return self.log.mark_sent(ids, when)

    def ingest_events(self, events: pd.DataFrame, sends: pd.DataFrame, now=None) -> pd.DataFrame:
        """Turn event-log rows (the `events` and `sends` tables) into rewards.

        Each campaign's `reward_event` rows whose send carries a decision id
        become rewards (event_id = the event's id, so re-delivered events count
        once). Returns DataFrame[event_id, decision_id, status].
        """
        for table, cols in (("events", ("event_id", "send_id", "type", "occurred_at", "value")),
                            ("sends", ("send_id", "campaign_id", "decision_id"))):
            frame = events if table == "events" else sends
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"{table}: missing columns {missing}")
        merged = events.merge(sends[["send_id", "campaign_id", "decision_id"]], on="send_id", how="inner")
        merged = merged[merged["decision_id"].notna()]
        parts = []
        for cid, group in merged.groupby("campaign_id", sort=False):
            try:
                _, config = self.log.campaign(str(cid))
            except ValueError:
                continue  # sends of campaigns not run by this allocator
            paying = group[group["type"] == config["reward_event"]]
            if config["reward_value"] == "value":
                paying = paying[paying["value"].notna()]
                value = paying["value"].to_numpy(float)
            else:
                value = np.ones(len(paying))
            if len(paying):
                status = self.rewards(paying["decision_id"].astype(str).tolist(), value,
                                      paying["occurred_at"], paying["event_id"].tolist(), now=now)
                parts.append(pd.DataFrame({"event_id": paying["event_id"].to_numpy(),
                                           "decision_id": paying["decision_id"].to_numpy(), "status": status}))
        if not parts:
            return pd.DataFrame({"event_id": [], "decision_id": [], "status": []})
        return pd.concat(parts, ignore_index=True)

    # learning ----------------------------------------------------------------
    def learn(self, now=None, gate: bool = False, track: bool = False, min_gate_rows: int = 200) -> int:
        """Fold every decision whose wait window has closed into a new snapshot.

        Resumes from the newest snapshot (live or candidate) and returns the
        new version. Only in-window rewards are used (late ones are stored,
        not learned from); decisions with no reward get the default reward.
        A campaign with `learn_from='sent'` folds only decisions marked sent
        or rewarded; the closed ones it leaves out are counted per campaign in
        `learn_unsent` and the snapshot's meta (`unsent`).
        Without `gate` every new snapshot is live at once. With `gate` a new
        snapshot is a candidate; it is promoted (made live) by a later
        `learn` when, on the decisions closed since its cutoff, its DR lower
        bound beats the live policy's estimate (`gate.promotion_gate`; each
        comparison is logged to MLflow when `track`).
        """
        from threadpoolctl import threadpool_limits

        from .gate import candidate_dr, promotion_gate
        from .learner import closed_decisions, fold_closed_decisions

        now_us = to_micros(now, "now")
        newest = self.snapshots.newest()
        live = self.snapshots.newest(live_only=True)
        base = self.snapshots.read(newest) if newest else Snapshot(version=0)
        pending = gate and newest > live
        campaigns: dict[str, CampaignState] = {}
        refused: dict[str, str] = {}
        unsent: dict[str, int] = {}
        self.gate_decisions = []
        with threadpool_limits(1):
            for cid in self.log.campaign_ids():
                cache = self._campaign(cid)
                state = base.campaigns.get(cid)
                rows, upto, unsent[cid] = closed_decisions(self.log, cid, cache.config, state, now_us)
                served = rows[rows["mode"] == "policy"]
                if pending and state is not None and len(served) >= min_gate_rows:
                    dr, on_policy = candidate_dr(served, state.posterior, cache.config, cache.Z, cache.slot_of,
                                                 seed=string_key(f"{cid}:{newest}"))
                    decision = promotion_gate(dr, on_policy, newest, live)
                    self.gate_decisions.append((cid, decision))
                    if track:
                        from .tracking import log_gate

                        log_gate(decision, cid)
                try:
                    campaigns[cid] = fold_closed_decisions(rows, upto, cache.config, cache.Z, cache.slot_of, state)
                except RefusedUpdate as exc:  # keep the last good state (and cutoff): serving never sees it
                    refused[cid] = f"update refused, last good state kept: {exc}"
                    logger.warning("learn: campaign %r: %s", cid, refused[cid])
                    if state is not None:
                        campaigns[cid] = state
        self.learn_refusals = refused
        self.learn_unsent = unsent = {cid: n for cid, n in unsent.items() if n}
        if pending and self.gate_decisions and all(d.promote for _, d in self.gate_decisions):
            self.snapshots.promote(newest)
        meta = {**({"refused": refused} if refused else {}), **({"unsent": unsent} if unsent else {})}
        snapshot = Snapshot(version=newest + 1, campaigns=campaigns, live=not gate, meta=meta)
        self.snapshots.write(snapshot)
        return snapshot.version

    # reports -----------------------------------------------------------------
    def apprentice_report(self, campaign_id: str) -> dict:
        """Agreement between what served (baseline) and what the policy would have chosen."""
        df = self.log.decisions(campaign_id)
        df = df[df["mode"] == "apprentice"]
        agree = float((df["variant"] == df["policy_choice"]).mean()) if len(df) else float("nan")
        return {"campaign_id": campaign_id, "decisions": int(len(df)), "agreement": agree}


def _one_hot(n: int, K: int, j: int) -> np.ndarray:
    out = np.zeros((n, K))
    out[:, j] = 1.0
    return out


def _control_probs(cfg: dict, position: dict[int, int], n: int, K: int) -> np.ndarray:
    control = cfg["control_variant"]
    if control not in position:
        raise ValueError(f"exclude: the control variant {control} must stay eligible")
    return _one_hot(n, K, position[control])


def _unusable(snapshot: Snapshot) -> str | None:
    """Why a snapshot must not serve (a campaign's posterior fails `check_posterior`), or None."""
    for cid, state in snapshot.campaigns.items():
        try:
            check_posterior(state.posterior)
        except RefusedUpdate as exc:
            return f"campaign {cid!r}: {exc}"
    return None


def _check_reward_range(reward_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range: expected two numbers (lo, hi), got {reward_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > MAX_REWARD_MAGNITUDE:
        raise ValueError(f"reward_range: bounds must be finite and within +-{MAX_REWARD_MAGNITUDE:g}")
    if not lo < hi:
        raise ValueError(f"reward_range: lo must be below hi, got [{lo:g}, {hi:g}]")
    return lo, hi


def _check_variants(variants: pd.DataFrame) -> None:
    if not isinstance(variants, pd.DataFrame) or "content_id" not in variants.columns:
        raise ValueError("variants: expected a DataFrame with a content_id column")
    if len(variants) == 0:
        raise ValueError("variants: at least one variant is required")
    if variants["content_id"].duplicated().any():
        raise ValueError("variants: content_id values must be unique")
