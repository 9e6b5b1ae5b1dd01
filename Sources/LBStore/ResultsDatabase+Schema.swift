import GRDB

extension ResultsDatabase {
    /// The schema of DESIGN §5 as GRDB migrations.
    ///
    /// A migration never changes once it has shipped: a later schema change is a new migration
    /// ("v2", …) appended here, so a newer LBLab opens an older file and upgrades it in place, and an
    /// older LBLab refuses a file that has migrations it does not know (``StoreError/newerSchema``).
    /// Migrations use table and column names only, never application types.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: Self.schemaV1)
        }
        // v2: the key a request carried (X-LBLab-Key), so that the share of keys a membership change
        // moves to another backend can be measured.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "ALTER TABLE requests ADD COLUMN key INTEGER")
        }
        // v3: request records of a run still recording, packed a batch to a row (`RecordChunk`); they
        // become rows of `requests` and `proxy_requests` when the run ends. `writer` names the recording
        // process (host, pid, start time), so that the chunks of one that died can be told from those of
        // one still at work.
        migrator.registerMigration("v3") { db in
            try db.execute(
                sql: """
                    CREATE TABLE staged_records (
                        id INTEGER PRIMARY KEY,
                        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('requests', 'proxy_requests')),
                        row_count INTEGER NOT NULL,
                        writer TEXT NOT NULL,
                        data BLOB NOT NULL
                    )
                    """
            )
        }
        // v4: whether the binary that recorded a run was built from a work tree with changes not in
        // `git_commit` (1), from exactly that commit (0), or unknown (NULL).
        migrator.registerMigration("v4") { db in
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN git_modified INTEGER")
        }
        // v5: what a run that keeps no row per request stores instead (`RunTotals`): per run and per
        // backend the counts and latency sums (`totals`, `backend_id` NULL for the run), the latency
        // histograms' non-empty buckets (`totals_latency`; no `service` rows when the service histogram
        // is the corrected one, as in runs whose requests all went out when due), and errors by kind
        // (`totals_errors`).
        migrator.registerMigration("v5") { db in
            try db.execute(
                sql: """
                    CREATE TABLE totals (
                        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                        backend_id INTEGER,
                        window_start_us INTEGER NOT NULL,
                        window_end_us INTEGER NOT NULL,
                        requests INTEGER NOT NULL,
                        responses INTEGER NOT NULL,
                        errors INTEGER NOT NULL,
                        corrected_sum_us INTEGER NOT NULL,
                        service_sum_us INTEGER NOT NULL,
                        proxy_requests INTEGER,
                        retries INTEGER,
                        imbalance_per_second REAL,
                        remapped_on_add REAL,
                        remapped_on_remove REAL
                    );
                    CREATE INDEX totals_by_run ON totals(run_id, backend_id);
                    CREATE TABLE totals_latency (
                        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                        backend_id INTEGER,
                        measure TEXT NOT NULL CHECK (measure IN ('corrected', 'service')),
                        value_us INTEGER NOT NULL,
                        count INTEGER NOT NULL
                    );
                    CREATE INDEX totals_latency_by_run ON totals_latency(run_id, backend_id, measure, value_us);
                    CREATE TABLE totals_errors (
                        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                        kind TEXT NOT NULL,
                        count INTEGER NOT NULL
                    );
                    CREATE INDEX totals_errors_by_run ON totals_errors(run_id);
                    """
            )
        }
        return migrator
    }

    /// Version 1 of the schema. Times are integer microseconds since the run's start; `runs.started_at`
    /// is the wall-clock start (ISO 8601, UTC).
    ///
    /// `requests` and `proxy_requests` have no index: they take hundreds of thousands of rows per second,
    /// and any index on them (even `(run_id)` alone, or a WITHOUT ROWID primary key) measured 35% off
    /// the insert rate (bench/RESULTS.md). A run's rows are contiguous in rowid order, so per-run queries
    /// scan well; the offline commands add the indexes they need when they first analyse a file.
    private static let schemaV1 = """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('real', 'sim', 'loadgen')),
            scenario TEXT,
            algorithm TEXT,
            repeat INTEGER NOT NULL DEFAULT 0,
            seed INTEGER,
            params_json TEXT,
            started_at TEXT NOT NULL,
            duration_us INTEGER,
            status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted', 'failed')),
            config_yaml TEXT,
            config_sha256 TEXT,
            git_commit TEXT,
            host TEXT,
            lblab_version TEXT,
            dropped_records INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE backends (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            name TEXT NOT NULL,
            address TEXT,
            weight REAL NOT NULL DEFAULT 1,
            spec_json TEXT,
            PRIMARY KEY (run_id, id),
            UNIQUE (run_id, name)
        );
        CREATE TABLE requests (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            client_id INTEGER NOT NULL,
            client_ip TEXT,
            intended_us INTEGER NOT NULL,
            sent_us INTEGER NOT NULL,
            first_byte_us INTEGER,
            done_us INTEGER NOT NULL,
            status INTEGER,
            backend_id INTEGER,
            attempts INTEGER NOT NULL DEFAULT 1,
            bytes_in INTEGER NOT NULL DEFAULT 0,
            bytes_out INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE TABLE proxy_requests (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            request_id INTEGER NOT NULL,
            received_us INTEGER NOT NULL,
            picked_us INTEGER,
            backend_id INTEGER,
            upstream_start_us INTEGER,
            upstream_done_us INTEGER,
            status INTEGER,
            attempts INTEGER NOT NULL DEFAULT 1,
            retried_from INTEGER,
            client_ip TEXT
        );
        CREATE TABLE samples (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            t_us INTEGER NOT NULL,
            source TEXT NOT NULL,
            cpu_usage_us INTEGER,
            cpu_throttled_us INTEGER,
            rss_bytes INTEGER,
            in_flight INTEGER,
            open_fds INTEGER,
            rx_bytes INTEGER,
            tx_bytes INTEGER
        );
        CREATE INDEX samples_by_run ON samples(run_id, source, t_us);
        CREATE TABLE events (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            t_us INTEGER NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail_json TEXT
        );
        CREATE INDEX events_by_run ON events(run_id, t_us);
        """
}
