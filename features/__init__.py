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
- `cli`            `inbox features build | apply | materialize | all | schema`

Entities: `contact` (join key contact_id, int64), `content` (content_id, int64).

The data dictionary is the feature views' declared schema in `definitions`: each
`Field` carries its type and description, and the views are checked against the
tables the pipeline writes. `inbox features schema` prints it. Feature services:
`lead_scoring`, `send_time` (needs a `request_time` for the on-demand
`request_context` view), `content_preference` (entities contact and content),
`content_catalog`, and `contact_predictions` after `inbox publish`.
"""
