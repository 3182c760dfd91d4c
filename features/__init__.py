"""Feature store: event log -> point-in-time feature snapshots -> Feast (offline + online).

Modules
- `pipeline`       build_features(events_dir, out_dir, as_of_dates=None, half_life_days=14, config=None)
- `snapshots`      the numpy snapshot engine (dense running sums per contact chunk)
- `table_schemas`  declared Arrow schemas of the contact tables (types never come from one chunk's data)
- `parquet_sink`   background Parquet writer: declared schemas, atomic files
- `send_hours`     sparse cumulative send / opened-send counts by local send hour
- `email_quality`  syntax / disposable / role / free-mail / typo checks (no network)
- `definitions`    Feast entities, sources, feature views, on-demand view, services
- `store`          get_store(settings), apply(store), materialize(store, end) (fast path: streamed in batches)
- `online_store`   BatchSqliteOnlineStore: Feast online store, one row per entity, batched writes
- `value_codec`    vectorized Feast protobuf (RepeatedValue) encoding/decoding
- `online`         OnlineReader(store).read(service, contact_ids, content_ids=, request_time=)
- `training`       training_frame(entity_df, service_name, store=None): point-in-time correct
- `request_context` local hour / weekday of a request in the contact's time zone
- `workflow`       build / apply / materialize with progress; build_apply_materialize(settings)
- `cli`            `inbox features build | apply | materialize | all`

Entities: `contact` (join key contact_id, int64), `content` (content_id, int64).

Feature views (one Parquet table each in settings.features_dir; snapshots at 00:00 UTC,
computed only from events strictly before the snapshot):

`contact_engagement` (contact, daily, TTL 3 days)
  sends_7d, opens_7d, clicks_7d, conversions_7d, sends_30d, opens_30d, clicks_30d,
  conversions_30d, sends_90d, opens_90d, clicks_90d, conversions_90d  (Int64; opens/clicks =
  distinct sends first opened/clicked in the window), revenue_90d,
  open_rate_30d, click_rate_30d, open_rate_90d, click_rate_90d, conversion_rate_90d
  (per send, shrunk to the population rate of the same window: (k + a p) / (n + a), a = 10),
  days_since_last_open, days_since_last_click, days_since_last_send (NaN if never),
  engagement_score (sum of w * 2^(-age/half_life); open 1, click 3, conversion 10),
  sends_since_last_open (fatigue streak), sends_total, opens_total, clicks_total,
  conversions_total, unsubscribed, bounced, complained (Bool: ever before), tenure_days
`contact_send_time` (contact, daily)
  open_share_wd_h00 .. open_share_wd_h23, open_share_we_h00 .. open_share_we_h23 (Float32:
  share of first opens per LOCAL hour on weekdays / weekend days, shrunk to the population
  profile with 5 pseudo-opens; each 24-vector sums to 1), opens_weekday, opens_weekend,
  best_hour_weekday, best_hour_weekend (argmax local hour)
`contact_send_hours` (contact, SPARSE: a row only on snapshots where the counts change; no TTL)
  sent_wd_h00 .. sent_wd_h23, sent_we_h00 .. sent_we_h23 (Int64, int32 in Parquet: the contact's
  sends whose LOCAL send hour was HH on a weekday / weekend day, all history before the snapshot),
  sent_opened_wd_h00 .. sent_opened_we_h23 (how many of those sends were opened; an open counts
  from the day of the open), sends_weekday, sends_weekend (row sums). Sufficient statistics:
  the send-time model does the smoothing (see `features.send_hours`)
`contact_topics` (contact, daily)
  click_affinity_<topic> for every topic in the content table (simulator: case_study,
  education, event, news, product, promotion): 90-day clicks per send of that topic, shrunk
  to the population's topic CTR
`contact_profile` (contact, valid from created_at, no TTL)
  industry, company_size, seniority, country, timezone, signup_source, consent,
  email_valid, email_disposable, email_role_account, email_free_mail,
  email_typo_suspected, email_suggested_domain
`content_features` (content, daily)
  content_topic, content_format, subject_length, has_personalization, has_urgency,
  has_emoji, content_age_days, content_sends_total, content_open_rate, content_click_rate
On-demand `request_context` (inputs: contact_profile.timezone + request `request_time`)
  local_hour, local_weekday (0 = Monday), local_is_weekend

Feature services
- `lead_scoring`       contact_engagement + contact_profile
- `send_time`          contact_send_time + contact_send_hours + contact_engagement[open_rate_30d, open_rate_90d,
                       sends_7d, sends_since_last_open, days_since_last_open, engagement_score]
                       + contact_profile[timezone] + request_context (needs request_time)
- `content_preference` contact_topics + content_features (entities contact AND content)
- `content_catalog`    content_features
"""
