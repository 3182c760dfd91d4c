"""Run a campaign against the simulated world with delayed rewards and
compare our policies with Vowpal Wabbit on the same stream.

The stream: T decisions spread evenly over `days`, each for a random contact
(public attributes one-hot as context); the campaign's variants are
`n_variants` content items with distinct topics. The reward is a click; the
oracle is `world.response.probabilities(...)["click"]` for every variant.
Every policy sees the same contacts, the same action uniforms and the same
click noise (a click happens iff noise < p(click | contact, chosen variant)),
and the same delays: a click arrives `open delay + click delay` after the
send (the simulator's lognormal delays); a decision's reward is final at
decided_at + wait window (late clicks count as no click for learning, as in
the allocator). Every `update_every_hours` the learners fold in what became
final (mini-batches) and decide the next block.

Regret is expected regret against the per-contact oracle variant:
sum_t max_a p(t, a) - p(t, a_t).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .agents import LinearAgent, VowpalWabbitAgent
from .features import VariantEncoder
from .policies import EpsilonGreedy, LinearThompsonSampling, LinUCB, Uniform
from .randomness import splitmix64, uniforms

CONTEXT_ATTRIBUTES = ("industry", "company_size", "seniority", "signup_source")
VARIANT_FEATURES = ("topic", "format", "has_personalization", "has_urgency", "has_emoji", "subject_length")
ALL_POLICIES = ("lin_ts", "lin_ucb", "eps_greedy", "uniform", "vw_epsilon", "vw_squarecb")
US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True)
class SimulationConfig:
    decisions: int = 20_000
    seed: int = 7
    n_contacts: int = 20_000
    n_variants: int = 5
    days: float = 14.0
    wait_window_hours: float = 24.0
    update_every_hours: float = 1.0
    floor: float = 0.0
    ts_scale: float = 0.05
    ts_draws: int = 512
    ucb_alpha: float = 0.05
    epsilon: float = 0.05
    policies: tuple[str, ...] = ALL_POLICIES
    start: str = "2026-05-01"

    def __post_init__(self):
        for name in ("decisions", "n_contacts", "n_variants", "ts_draws"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be a positive integer")
        if self.n_variants < 2:
            raise ValueError("n_variants: need at least 2 variants")
        for name in ("days", "wait_window_hours", "update_every_hours"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        unknown = set(self.policies) - set(ALL_POLICIES)
        if unknown:
            raise ValueError(f"policies: unknown {sorted(unknown)}; choose from {list(ALL_POLICIES)}")


@dataclass
class CampaignStream:
    contact_ids: np.ndarray   # (T,)
    X: np.ndarray             # (T, d) context, bias first
    context_names: list[str]
    variants: pd.DataFrame    # the campaign's content rows
    Z: np.ndarray             # (K, f) variant features
    decided_us: np.ndarray    # (T,) sorted
    click_prob: np.ndarray    # (T, K) oracle
    noise: np.ndarray         # (T,) click iff noise < p
    delay_us: np.ndarray      # (T,) click arrival delay
    u: np.ndarray             # (T,) action uniforms (seeded per decision)
    shared_lines: list[str] = field(repr=False)
    action_lines: list[str] = field(repr=False)


@dataclass
class PolicyResult:
    name: str
    clicks: int
    expected_reward: float
    regret: float
    decide_seconds: float
    learn_seconds: float
    cum_regret: np.ndarray = field(repr=False)
    cum_reward: np.ndarray = field(repr=False)

    @property
    def decisions_per_second(self) -> float:
        return len(self.cum_regret) / max(self.decide_seconds, 1e-12)

    def row(self) -> dict:
        T = len(self.cum_regret)
        return {"policy": self.name, "clicks": self.clicks, "ctr": self.clicks / T,
                "expected_ctr": self.expected_reward / T, "regret": self.regret,
                "decisions_per_s": self.decisions_per_second, "learn_s": self.learn_seconds}


@dataclass
class SimulationResult:
    config: SimulationConfig
    oracle_reward: float
    results: list[PolicyResult]
    variant_ids: list[int]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.results])

    def best(self, prefix: str) -> PolicyResult:
        own = [r for r in self.results if r.name.startswith(prefix) == (prefix == "vw_")] if prefix == "vw_" else \
            [r for r in self.results if not r.name.startswith("vw_") and r.name != "uniform"]
        return min(own, key=lambda r: r.regret)


def _clean(value) -> str:
    return str(value).replace(" ", "_").replace(":", "_").replace("|", "_")


def build_stream(world, config: SimulationConfig) -> CampaignStream:
    rng = np.random.default_rng(config.seed)
    content = world.content
    topics = rng.permutation(content["topic"].unique())[: config.n_variants]
    picks = [rng.choice(content.index[content["topic"] == t]) for t in topics]
    if len(picks) < config.n_variants:  # fewer topics than variants: fill with other items
        rest = rng.permutation(content.index.difference(picks))[: config.n_variants - len(picks)]
        picks += list(rest)
    variants = content.loc[picks].reset_index(drop=True)
    Z = VariantEncoder.fit(variants[["content_id", *VARIANT_FEATURES]]).encode(variants)

    T = config.decisions
    contacts = world.contacts
    rows = rng.integers(0, len(contacts), T)
    contact_ids = contacts["contact_id"].to_numpy()[rows]
    onehot = pd.get_dummies(contacts[list(CONTEXT_ATTRIBUTES)].astype(str), prefix_sep="=")
    context_names = list(onehot.columns)
    X = np.hstack([np.ones((T, 1)), onehot.to_numpy(dtype=float)[rows]])

    start_us = pd.Timestamp(config.start, tz="UTC").value // 1000
    span_us = int(config.days * 24 * US_PER_HOUR)
    decided_us = start_us + np.sort(rng.integers(0, span_us, T))
    K = len(variants)
    sent = np.repeat(decided_us.astype("datetime64[us]"), K)
    probs = world.response.probabilities(np.repeat(contact_ids, K), np.tile(variants["content_id"].to_numpy(), T),
                                         sent)["click"].reshape(T, K)
    from simulation.response import CLICK_DELAY, OPEN_DELAY  # the simulator's lognormal (median s, sigma)

    open_delay = OPEN_DELAY[0] * np.exp(OPEN_DELAY[1] * rng.standard_normal(T))
    click_delay = CLICK_DELAY[0] * np.exp(CLICK_DELAY[1] * rng.standard_normal(T))
    keys = splitmix64(np.uint64(config.seed) * np.uint64(1_000_003) + np.arange(T, dtype=np.uint64))

    attrs = contacts[list(CONTEXT_ATTRIBUTES)].astype(str).to_numpy()
    shared = [" ".join(f"{a}={_clean(v)}" for a, v in zip(CONTEXT_ATTRIBUTES, attrs[r])) for r in rows.tolist()]
    actions = []
    for _, v in variants.iterrows():
        flags = " ".join(n for n in ("has_personalization", "has_urgency", "has_emoji") if bool(v[n]))
        actions.append(f"|a id={int(v['content_id'])} topic={_clean(v['topic'])} format={_clean(v['format'])} "
                       f"{flags} subject_length:{float(v['subject_length']) / 60:.3f}")
    return CampaignStream(contact_ids, X, context_names, variants, Z, decided_us, probs, rng.random(T),
                          ((open_delay + click_delay) * 1e6).astype(np.int64), uniforms(keys, 0),
                          [f"shared |u {s}" for s in shared], actions)


def _make_agent(name: str, stream: CampaignStream, config: SimulationConfig):
    d = stream.X.shape[1]
    policy = {
        "lin_ts": lambda: LinearThompsonSampling(scale=config.ts_scale, draws=config.ts_draws),
        "lin_ucb": lambda: LinUCB(alpha=config.ucb_alpha),
        "eps_greedy": lambda: EpsilonGreedy(epsilon=config.epsilon),
        "uniform": lambda: Uniform(),
    }
    if name in policy:
        return LinearAgent(policy[name](), stream.Z, d, floor=config.floor, seed=config.seed)
    return VowpalWabbitAgent(name.removeprefix("vw_"), stream.shared_lines, stream.action_lines)


def run_policy(name: str, stream: CampaignStream, config: SimulationConfig) -> PolicyResult:
    """One policy through the whole stream (decide block, fold in what became final, repeat)."""
    agent = _make_agent(name, stream, config)
    is_vw = isinstance(agent, VowpalWabbitAgent)
    T, K = stream.click_prob.shape
    window = int(config.wait_window_hours * US_PER_HOUR)
    step = int(config.update_every_hours * US_PER_HOUR)
    chosen = np.zeros(T, dtype=np.int64)
    propensity = np.zeros(T)
    decide_s = learn_s = 0.0
    learned = 0
    t0 = int(stream.decided_us[0])
    bounds = np.searchsorted(stream.decided_us, np.arange(t0, int(stream.decided_us[-1]) + step + 1, step), "left")
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo:
            closed = int(np.searchsorted(stream.decided_us, stream.decided_us[lo] - window, "right"))
            if closed > learned:
                rows = np.arange(learned, closed)
                a = chosen[rows]
                click = stream.noise[rows] < stream.click_prob[rows, a]
                reward = (click & (stream.delay_us[rows] <= window)).astype(float)
                t = time.perf_counter()
                if is_vw:
                    agent.learn_rows(rows, a, reward, propensity[rows])
                else:
                    agent.learn(stream.X[rows], a, reward, propensity[rows])
                learn_s += time.perf_counter() - t
                learned = closed
            t = time.perf_counter()
            if is_vw:
                probs, a = agent.decide_rows(np.arange(lo, hi), stream.u[lo:hi])
            else:
                probs, a = agent.decide(stream.X[lo:hi], stream.u[lo:hi])
            decide_s += time.perf_counter() - t
            chosen[lo:hi] = a
            propensity[lo:hi] = probs[np.arange(hi - lo), a]
    if is_vw:
        agent.close()
    p_chosen = stream.click_prob[np.arange(T), chosen]
    clicks = stream.noise < p_chosen
    regret = stream.click_prob.max(axis=1) - p_chosen
    return PolicyResult(name, int(clicks.sum()), float(p_chosen.sum()), float(regret.sum()), decide_s, learn_s,
                        np.cumsum(regret), np.cumsum(clicks))


def run_simulation(config: SimulationConfig | None = None, world=None, progress=None, **overrides) -> SimulationResult:
    """Simulate every policy in `config.policies` on one stream; for notebooks and the CLI.

    `progress(name)` is called before each policy (e.g. to advance a progress bar).
    """
    config = config or SimulationConfig(**overrides)
    if world is None:
        from simulation.world import WorldConfig, generate_world

        world = generate_world(WorldConfig(n_contacts=config.n_contacts, seed=config.seed, start=config.start))
    from threadpoolctl import threadpool_limits

    stream = build_stream(world, config)
    results = []
    with threadpool_limits(1):  # small matrices: one BLAS thread is fastest and immune to oversubscription
        for name in config.policies:
            if progress is not None:
                progress(name)
            results.append(run_policy(name, stream, config))
    return SimulationResult(config, float(stream.click_prob.max(axis=1).sum()), results,
                            stream.variants["content_id"].astype(int).tolist())


def config_params(config: SimulationConfig) -> dict:
    params = asdict(config)
    params["policies"] = ",".join(config.policies)
    return params
