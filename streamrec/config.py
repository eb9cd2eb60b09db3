"""One frozen settings object, built once at the edge (the CLI) and passed down.

Sources, highest priority first: CLI flags (passed as overrides), ``STREAMREC_*`` environment
variables (nested keys split on ``__``, e.g. ``STREAMREC_WINDOW__MAX_EVENTS=20``), an optional
YAML file, then the defaults below.

>>> settings = load_settings(window={"max_events": 20})
>>> settings.window.max_events, settings.encoder.model
(20, 'gpt2')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from streamrec.errors import ConfigError
from streamrec.events import DOMAIN_ACTIONS


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowSettings(_Section):
    max_events: int = Field(50, ge=1, description="N: events kept per user window")
    horizon_seconds: float = Field(30 * 86400, gt=0, description="events older than this leave the window")
    max_users: int = Field(200_000, ge=1, description="users held in memory; least recently active evicted")
    idle_ttl_seconds: float | None = Field(None, gt=0, description="evict users idle this long (event time)")
    max_seen_items: int = Field(1000, ge=0, description="items remembered per user for exclusion")
    max_lateness_seconds: float = Field(3600, ge=0, description="out-of-order events older than the "
                                        "user's newest event by more than this are dropped")


class TextSettings(_Section):
    language: Literal["en", "zh"] = "en"
    action_words: dict[str, str] = Field(default_factory=dict, description="override action wording")
    separator: str | None = None
    time_gaps: bool = Field(False, description="insert '(3 hours later)' style gap wording")


class EncoderSettings(_Section):
    model: str = Field("gpt2", description="HF model id, local directory, or .gguf file")
    gguf_file: str | None = Field(None, description="GGUF file name inside `model` (a directory or repo)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores)")
    pooling: Literal["auto", "last", "mean"] = "auto"
    max_length: int = Field(512, ge=8, description="tokens kept per text (the most recent ones)")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    mode: Literal["text", "incremental", "item", "pooled"] = Field(
        "pooled", description="text: re-encode each window's text; incremental: keep each user's KV cache and "
        "encode only new events' tokens (same vectors as text on chunked tokens); item: one position per "
        "event (item + action input embeddings), with the KV cache; pooled: each item's text encoded once, "
        "a window is the recency- and action-weighted mean of its items' vectors (no model run per event)")
    pool_decay: float = Field(0.9, gt=0, le=1, description="pooled mode: weight of the p-th newest event: "
                              "pool_decay**p (times its action's weight)")
    slack_events: int = Field(32, ge=0, description="S: an incremental view holds N to N+S events before "
                              "it is cut back to N and re-encoded once")
    kv_cache_bytes: int = Field(2 << 30, ge=0, description="KV-cache budget of incremental/item modes, "
                                "least recently used users evicted (0: no cache)")
    compile: bool = Field(False, description="torch.compile the model for incremental/item window encoding")


class HeadSettings(_Section):
    dim: int = Field(64, ge=4)
    context_items: int = Field(10, ge=1, description="recent items fed to the user side by id")
    sequence: Literal["weighted", "attention"] = Field("weighted", description="how the user side reads its "
                                                       "recent items: weighted: a learned weight per position, "
                                                       "summed; attention: that sum plus one self-attention "
                                                       "block over them (learned positions), read at the "
                                                       "newest")
    text_features: bool = Field(True, description="use the encoder's vectors (off: ids-only ablation)")
    id_features: bool = Field(True, description="use learned id embeddings (off: text-only ablation)")
    learning_rate: float = Field(3e-3, gt=0)
    negatives: int = Field(1024, ge=1, description="uniform negatives per update (sampled "
                           "softmax; at least the catalogue's size: the full softmax)")
    replay_size: int = Field(4096, ge=0, description="recent examples kept for replay")
    replay_sample: int = Field(64, ge=0, description="replayed examples mixed into each update (about one per "
                               "new example at the default batch size: more replay dilutes what is new)")
    steps_per_batch: int = Field(2, ge=1)
    cooccurrence_history: int = Field(30, ge=0, description="recent positive items the co-occurrence "
                                      "score reads (0: no co-occurrence, the head alone)")
    cooccurrence_decay: float = Field(0.85, gt=0, le=1, description="weight of the p-th most recent item: decay**p")
    cooccurrence_alpha: float = Field(0.5, ge=0, le=1, description="similarity c(i, j) / (n(i)**alpha n(j)**(1 - "
                                      "alpha)) of a recent item i and a candidate j (0.5: cosine; higher favours "
                                      "popular candidates)")
    cooccurrence_index: Literal["auto", "dense", "sparse"] = Field("auto", description="dense: an item x "
                                                                    "item matrix (exact; 4 bytes x items^2); sparse: "
                                                                    "each item's top cooccurrence_slots neighbours "
                                                                    "(memory linear in items); auto: dense up to "
                                                                    "cooccurrence_max_items, then sparse")
    cooccurrence_max_items: int = Field(20_000, ge=1, description="items the dense co-occurrence index "
                                        "holds; auto moves to the sparse index when the catalogue outgrows it")
    cooccurrence_slots: int = Field(64, ge=1, description="sparse index: neighbours kept per item "
                                    "(Space-Saving: the heaviest stay), 12 bytes each")
    cooccurrence_half_life: float | None = Field(None, gt=0, description="positive events after which a "
                                                 "co-occurrence counts half (None: never forgotten)")
    ranker_learning_rate: float = Field(0.05, gt=0, description="Adam step of the final ranker's "
                                        "feature weights, learned test-then-train on the stream")
    ranker_new_items: bool = Field(True, description="the ranker also learns its own weights for items "
                                   "nobody has taken yet and for cold ones (fewer than retrieval.cold_below "
                                   "interactions): an offset each, and how far to trust the head and the text "
                                   "there, where the co-occurrence and popularity know nothing")
    ranker_text_neighbours: int = Field(20, ge=0, description="with ranker_new_items and text features: "
                                        "items nobody has taken yet and cold ones also score the co-occurrence "
                                        "of their k nearest items by text, so new items inherit the evidence "
                                        "of the items they read like (0: off)")
    seed: int = 0
    checkpoint_path: Path | None = None


class RetrievalSettings(_Section):
    k: int = Field(10, ge=1)
    exclude_actions: list[str] | None = Field(None, description="actions whose items are not "
                                              "recommended again (None: every action)")
    allow: list[str] | None = Field(None, description="only these items may be recommended")
    deny: list[str] = Field(default_factory=list, description="never recommend these items")
    max_per_category: int | None = Field(None, ge=1)
    cold_boost: float = Field(0.0, ge=0, description="new-item exposure: items with fewer than cold_below "
                              "interactions so far have their score raised by cold_boost times its "
                              "standardised value where that is above the user's mean (0: off)")
    cold_below: int = Field(5, ge=1, description="interactions under which an item counts as cold")
    mode: Literal["auto", "full", "candidates"] = Field("auto", description="full: rank the whole "
                                                         "catalogue; candidates: rank each user's candidates "
                                                         "only (streamrec.candidates); auto: full up to "
                                                         "full_max_items items at start, else candidates")
    full_max_items: int = Field(10_000, ge=1, description="auto mode: the largest catalogue ranked whole")
    candidates_cooccurrence: int = Field(150, ge=0, description="candidates from co-occurrence per user")
    candidates_text: int = Field(100, ge=0, description="candidates nearest by text per user (HNSW graph)")
    candidates_popular: int = Field(30, ge=0, description="candidates from the most taken items")
    candidates_trending: int = Field(20, ge=0, description="candidates from the most taken items lately")
    candidates_new: int = Field(20, ge=0, description="candidates from the newest items nobody has taken")
    trending_half_life: float = Field(5000.0, gt=0, description="positive events after which a take "
                                      "counts half for the trending candidates")
    item_encode_budget: int = Field(256, ge=0, description="candidates mode: items encoded per batch in "
                                    "the background (items a batch needs are encoded at once)")
    served_users: int = Field(20_000, ge=0, description="candidates mode: users whose last recommendation's "
                              "ranker rows are kept (float16, about 8 KB a user), so the ranker learns "
                              "their next event from what they were shown instead of scoring it again "
                              "(0: always score again)")


class BatchSettings(_Section):
    max_size: int = Field(64, ge=1, description="events per micro-batch")
    max_wait_ms: int = Field(200, ge=0, description="close a micro-batch after this long")
    adaptive: bool = Field(True, description="Kafka service: size and deadline follow the load (light "
                           "traffic: batches of one, closed at once; a backlog: up to max_size), "
                           "within max_size/max_wait_ms")


class DriftSettings(_Section):
    response: Literal["alert", "boost_lr"] = Field("alert", description="what a detected drift does")
    delta: float = Field(0.002, gt=0, lt=1, description="ADWIN confidence")
    lr_boost: float = Field(3.0, gt=0, description="learning-rate factor while boosted")
    boost_batches: int = Field(50, ge=1, description="micro-batches a boost lasts")
    quality_window: int = Field(1000, ge=10, description="scored events in the online hit@10 window")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "events"
    output_topic: str = "recommendations"
    dead_letter_topic: str = "events.dlq"
    items_topic: str | None = None
    group: str = "streamrec"
    input_format: Literal["auto", "msgpack", "json"] = Field(
        "auto", description="events on the input topic: auto reads each message as JSON or msgpack by its "
        "first byte (a JSON object starts with '{', a msgpack map never does); a named format rejects the other")
    output_format: Literal["json", "msgpack"] = Field("json", description="recommendations on the output topic")
    max_event_bytes: int = Field(64 * 1024, ge=64, description="larger input messages are dead-lettered "
                                 "(reason oversized) with their first max_event_bytes bytes")
    topic_partitions: int = Field(6, ge=1, description="partitions of the topics `streamrec produce` creates "
                                  "(the input topic's count caps how many instances share the work)")
    instance_id: str | None = Field(None, description="static group membership (group.instance.id), stable "
                                    "per instance, e.g. a StatefulSet pod name; '{hostname}' expands to the host "
                                    "name. A restart within consumer.session.timeout.ms gets its partitions back "
                                    "at once (None: dynamic membership, a restart waits out the old session)")
    exactly_once: bool = False
    config: dict[str, str] = Field(default_factory=dict, description="librdkafka settings, passed through")
    changelog_topic: str | None = Field(None, description="compacted window changelog "
                                        "(default: <group>-windows-changelog)")
    topic_replication_factor: int = Field(-1, ge=-1, description="replicas for topics the service "
                                          "creates (-1: the broker's default)")
    transactional_id: str | None = Field(None, description="exactly-once: stable per instance, e.g. the "
                                         "pod name (default: <group>-<hostname>-<pid>)")
    checkpoint_interval_seconds: float = Field(60.0, gt=0, description="save the head this often")
    role: Literal["single", "scorer", "trainer"] = Field(
        "single", description="single: one instance learns and serves (the default); scaled out, one trainer "
        "learns from every event and publishes the model to model_topic, and any number of scorers serve "
        "with the newest model they read from it (streamrec.kafka.model_topic)")
    model_topic: str | None = Field(None, description="compacted topic of model snapshots, in chunks "
                                    "(default: <group>-model)")
    model_interval_seconds: float = Field(5.0, gt=0, description="trainer: publish a snapshot (and commit "
                                          "what it holds) at most this often, while there is something new")
    model_chunk_bytes: int = Field(512 * 1024, ge=1024, description="a snapshot's files travel in records "
                                   "of at most this many bytes (under the broker's message.max.bytes)")
    shutdown_timeout_seconds: float = Field(30.0, gt=0, description="a graceful stop that takes "
                                            "longer than this exits non-zero")
    liveness_timeout_seconds: float = Field(120.0, gt=0, description="/healthz fails when the consumer loop "
                                            "has not turned, or one batch has run, for this long")
    broker_timeout_seconds: float | None = Field(300.0, gt=0, description="exit with code 4 once the broker has "
                                                 "been unreachable this long, at start or running (null: retry "
                                                 "for ever)")
    statistics_interval_seconds: float = Field(5.0, gt=0, description="librdkafka statistics: how often the "
                                               "consumer-lag gauge and the broker state behind /readyz refresh")
    progress_interval_seconds: float = Field(30.0, ge=0, description="log a one-line progress summary this "
                                             "often, at any log level (0: never)")
    log_repeat_seconds: float = Field(30.0, ge=0, description="a Kafka client warning repeated within this "
                                      "long is logged once, then as one summary line with its count (0: all)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    domain: str = "ecommerce"
    actions: dict[str, float] = Field(default_factory=dict, description="extra or re-weighted actions")
    window: WindowSettings = WindowSettings()
    text: TextSettings = TextSettings()
    encoder: EncoderSettings = EncoderSettings()
    head: HeadSettings = HeadSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    batch: BatchSettings = BatchSettings()
    kafka: KafkaSettings = KafkaSettings()
    drift: DriftSettings = DriftSettings()
    state_dir: Path = Path("streamrec-state")
    metrics_address: str = Field("127.0.0.1:9108", description="host:port for /metrics, /healthz, /readyz; "
                                 "an empty string disables the endpoint")

    @model_validator(mode="after")
    def _known_domain(self) -> Settings:
        # pydantic turns a validator's ValueError into a ValidationError; load_settings, into a ConfigError
        if not (self.head.text_features or self.head.id_features):
            raise ValueError("head.text_features and head.id_features cannot both be off")
        if self.retrieval.cold_boost and not self.head.cooccurrence_history:
            raise ValueError("retrieval.cold_boost counts interactions in the co-occurrence index: it needs "
                             "head.cooccurrence_history > 0")
        if self.domain not in DOMAIN_ACTIONS and not self.actions:
            raise ValueError(f"domain {self.domain!r} is unknown and no actions are given; "
                             f"use one of {', '.join(DOMAIN_ACTIONS)} or set `actions`")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    """CLI flags left unset arrive as None; they must not override other sources."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: overrides > environment > YAML ``config_file`` > defaults."""
    cls: type[Settings] = Settings
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ConfigError(f"config file {str(config_file)!r} does not exist")
        cls = type("FileSettings", (Settings,), {
            "model_config": SettingsConfigDict(**{**Settings.model_config, "yaml_file": config_file})
        })
    try:
        return cls(**_drop_none(overrides))
    except ValidationError as exc:
        if not any(error["loc"][:2] == ("kafka", "config") for error in exc.errors()):
            raise ConfigError(f"invalid settings: {exc}") from exc
        hidden = exc  # kafka.config may hold a password: its values stay out of the message and the chain
    raise ConfigError(f"invalid settings: {_without_values(hidden)}") from None


def _without_values(exc: ValidationError) -> str:
    """pydantic's message without the values it was given.

    >>> try:
    ...     load_settings(kafka={"config": {"sasl.password": 123456}})
    ... except ConfigError as exc:
    ...     print(exc)
    invalid settings: 1 validation error for Settings
    kafka.config.sasl.password: Input should be a valid string [type=string_type]
    """
    errors = exc.errors(include_url=False, include_input=False)
    lines = [f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} for {exc.title}"]
    lines += [f"{'.'.join(map(str, error['loc']))}: {error['msg']} [type={error['type']}]" for error in errors]
    return "\n".join(lines)
