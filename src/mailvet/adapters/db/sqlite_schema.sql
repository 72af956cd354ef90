-- The embedded SQLite schema, as the Alembic migrations build it (a dump of a file
-- they made). Written by `python -m mailvet.adapters.db.sqlite_schema`: do not edit.
-- head: 0011
-- migrations: 3eb4640e77a3e89713e1245c5871030609a33bcc92e380fdbd5f297f60557351
BEGIN TRANSACTION;
CREATE TABLE accounts (
	id VARCHAR(32) NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	password_hash VARCHAR(255), 
	first_name VARCHAR(200) NOT NULL, 
	last_name VARCHAR(200) NOT NULL, 
	newsletter BOOLEAN NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	confirmed_at DATETIME, 
	disabled BOOLEAN NOT NULL, 
	google_sub VARCHAR(255), 
	google_picture VARCHAR(2048), 
	avatar_key VARCHAR(1024), 
	totp_secret VARCHAR(512), 
	totp_enabled BOOLEAN NOT NULL, 
	totp_last_step INTEGER, 
	password_changed_at DATETIME, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_accounts PRIMARY KEY (id), 
	CONSTRAINT uq_accounts_email UNIQUE (email), 
	CONSTRAINT uq_accounts_google_sub UNIQUE (google_sub)
);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0011');
CREATE TABLE api_keys (
	id VARCHAR(16) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	label VARCHAR(100) NOT NULL, 
	secret_hash VARCHAR(64) NOT NULL, 
	scopes VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME, 
	last_used_at DATETIME, 
	revoked_at DATETIME, 
	CONSTRAINT pk_api_keys PRIMARY KEY (id), 
	CONSTRAINT fk_api_keys_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE billing_accounts (
	account_id VARCHAR(32) NOT NULL, 
	customer VARCHAR(255), 
	subscription_id VARCHAR(255), 
	tier VARCHAR(64) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	cancel_at BIGINT, 
	current_period_end BIGINT, 
	version BIGINT NOT NULL, 
	shortfall BIGINT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_billing_accounts PRIMARY KEY (account_id), 
	CONSTRAINT fk_billing_accounts_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE, 
	CONSTRAINT uq_billing_accounts_customer UNIQUE (customer)
);
CREATE TABLE billing_mail_keys (
	"key" VARCHAR(200) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_billing_mail_keys PRIMARY KEY ("key"), 
	CONSTRAINT fk_billing_mail_keys_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE billing_packs (
	session VARCHAR(255) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	payment_intent VARCHAR(255), 
	credits BIGINT NOT NULL, 
	amount BIGINT NOT NULL, 
	removed BIGINT NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_billing_packs PRIMARY KEY (session), 
	CONSTRAINT fk_billing_packs_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE, 
	CONSTRAINT uq_billing_packs_payment_intent UNIQUE (payment_intent)
);
CREATE TABLE billing_tiers (
	price VARCHAR(255) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	label VARCHAR(200) NOT NULL, 
	monthly_credits BIGINT NOT NULL, 
	amount BIGINT NOT NULL, 
	currency VARCHAR(8) NOT NULL, 
	product VARCHAR(255) NOT NULL, 
	active BOOLEAN NOT NULL, 
	synced_at DATETIME NOT NULL, 
	CONSTRAINT pk_billing_tiers PRIMARY KEY (price)
);
CREATE TABLE credit_balances (
	account_id VARCHAR(32) NOT NULL, 
	balance INTEGER NOT NULL, 
	entries INTEGER NOT NULL, 
	updated_at DATETIME NOT NULL, last_topup INTEGER DEFAULT '0' NOT NULL, last_topup_seq INTEGER DEFAULT '0' NOT NULL, low_warned_seq INTEGER DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_credit_balances PRIMARY KEY (account_id)
);
CREATE TABLE email_codes (
	account_id VARCHAR(32) NOT NULL, 
	purpose VARCHAR(32) NOT NULL, 
	code_hash VARCHAR(64) NOT NULL, 
	expires_at DATETIME NOT NULL, 
	attempts INTEGER NOT NULL, 
	sends INTEGER NOT NULL, 
	last_sent_at DATETIME NOT NULL, 
	CONSTRAINT pk_email_codes PRIMARY KEY (account_id, purpose), 
	CONSTRAINT fk_email_codes_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE job_callbacks (
	job_id VARCHAR(64) NOT NULL, 
	url VARCHAR(2048) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_job_callbacks PRIMARY KEY (job_id)
);
CREATE TABLE job_chunks (
	job_id VARCHAR(64) NOT NULL, 
	chunk_id INTEGER NOT NULL, 
	rows INTEGER NOT NULL, 
	CONSTRAINT pk_job_chunks PRIMARY KEY (job_id, chunk_id), 
	CONSTRAINT fk_job_chunks_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
CREATE TABLE job_verdicts (
	job_id VARCHAR(64) NOT NULL, 
	"row" INTEGER NOT NULL, 
	verdict BLOB NOT NULL, 
	CONSTRAINT pk_job_verdicts PRIMARY KEY (job_id, "row"), 
	CONSTRAINT fk_job_verdicts_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
CREATE TABLE jobs (
	id VARCHAR(64) NOT NULL, 
	filename VARCHAR(1024) NOT NULL, 
	email_column VARCHAR(1024), 
	checks VARCHAR(16) NOT NULL, 
	status VARCHAR(64) NOT NULL, 
	error VARCHAR NOT NULL, 
	rows_total INTEGER NOT NULL, 
	rows_done INTEGER NOT NULL, 
	chunks_total INTEGER NOT NULL, 
	layout BLOB NOT NULL, 
	owner VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, sheet VARCHAR(1024), result_kind VARCHAR(16), cost INTEGER DEFAULT '0' NOT NULL, counts TEXT, header_row INTEGER, 
	CONSTRAINT pk_jobs PRIMARY KEY (id)
);
CREATE TABLE ledger_entries (
	id VARCHAR(32) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	seq INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	amount INTEGER NOT NULL, 
	job_id VARCHAR(64), 
	"key" VARCHAR(255), 
	reason VARCHAR(1024) NOT NULL, 
	actor VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_ledger_entries PRIMARY KEY (id), 
	CONSTRAINT uq_ledger_entries_account_id UNIQUE (account_id, seq), 
	CONSTRAINT uq_ledger_entries_key UNIQUE ("key")
);
CREATE TABLE mail_outbox (
	id VARCHAR(32) NOT NULL, 
	"to" VARCHAR(320) NOT NULL, 
	template VARCHAR(64) NOT NULL, 
	context JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	claim VARCHAR(32), 
	sent_at DATETIME, 
	last_error TEXT NOT NULL, 
	given_up_at DATETIME, 
	"key" VARCHAR(200), 
	CONSTRAINT pk_mail_outbox PRIMARY KEY (id), 
	CONSTRAINT uq_mail_outbox_key UNIQUE ("key")
);
CREATE TABLE password_resets (
	token_hash VARCHAR(64) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	used_at DATETIME, 
	CONSTRAINT pk_password_resets PRIMARY KEY (token_hash), 
	CONSTRAINT fk_password_resets_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE pending_checks (
	check_id VARCHAR(32) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_pending_checks PRIMARY KEY (check_id)
);
CREATE TABLE rate_counters (
	"key" VARCHAR(255) NOT NULL, 
	window_start INTEGER NOT NULL, 
	count INTEGER NOT NULL, 
	CONSTRAINT pk_rate_counters PRIMARY KEY ("key")
);
CREATE TABLE recovery_codes (
	account_id VARCHAR(32) NOT NULL, 
	code_hash VARCHAR(64) NOT NULL, 
	CONSTRAINT pk_recovery_codes PRIMARY KEY (account_id, code_hash), 
	CONSTRAINT fk_recovery_codes_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE stripe_events (
	id VARCHAR(255) NOT NULL, 
	type VARCHAR(64) NOT NULL, 
	created BIGINT NOT NULL, 
	account_id VARCHAR(32), 
	outcome VARCHAR(16) NOT NULL, 
	detail TEXT NOT NULL, 
	processed_at DATETIME NOT NULL, 
	CONSTRAINT pk_stripe_events PRIMARY KEY (id)
);
CREATE TABLE web_sessions (
	token_hash VARCHAR(64) NOT NULL, 
	account_id VARCHAR(32), 
	data JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	authenticated_at DATETIME, 
	expires_at DATETIME NOT NULL, 
	CONSTRAINT pk_web_sessions PRIMARY KEY (token_hash)
);
CREATE TABLE webhook_deliveries (
	id VARCHAR(40) NOT NULL, 
	"key" VARCHAR(200) NOT NULL, 
	account_id VARCHAR(32) NOT NULL, 
	job_id VARCHAR(64) NOT NULL, 
	type VARCHAR(32) NOT NULL, 
	url VARCHAR(2048) NOT NULL, 
	body TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	claim VARCHAR(32), 
	last_status_code INTEGER, 
	last_error TEXT NOT NULL, 
	attempt_log JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	delivered_at DATETIME, 
	given_up_at DATETIME, 
	CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id), 
	CONSTRAINT fk_webhook_deliveries_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE, 
	CONSTRAINT uq_webhook_deliveries_key UNIQUE ("key")
);
CREATE TABLE webhook_endpoints (
	account_id VARCHAR(32) NOT NULL, 
	secret VARCHAR(64) NOT NULL, 
	url VARCHAR(2048) NOT NULL, 
	created_at DATETIME NOT NULL, 
	url_set_at DATETIME NOT NULL, 
	CONSTRAINT pk_webhook_endpoints PRIMARY KEY (account_id), 
	CONSTRAINT fk_webhook_endpoints_account_id_accounts FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX ix_jobs_created_at ON jobs (created_at);
CREATE INDEX ix_password_resets_account_id ON password_resets (account_id);
CREATE INDEX ix_ledger_entries_job_id ON ledger_entries (job_id);
CREATE INDEX ix_pending_checks_created_at ON pending_checks (created_at);
CREATE INDEX ix_jobs_owner_created_at ON jobs (owner, created_at);
CREATE INDEX ix_mail_outbox_next_attempt_at ON mail_outbox (next_attempt_at);
CREATE INDEX ix_web_sessions_account_id ON web_sessions (account_id);
CREATE INDEX ix_web_sessions_expires_at ON web_sessions (expires_at);
CREATE INDEX ix_api_keys_account_id ON api_keys (account_id);
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE INDEX ix_webhook_deliveries_account_id_created_at ON webhook_deliveries (account_id, created_at);
CREATE INDEX ix_webhook_deliveries_job_id ON webhook_deliveries (job_id);
CREATE INDEX ix_webhook_deliveries_next_attempt_at ON webhook_deliveries (next_attempt_at);
CREATE INDEX ix_billing_packs_account_id ON billing_packs (account_id);
CREATE INDEX ix_stripe_events_account_id ON stripe_events (account_id);
CREATE INDEX ix_billing_mail_keys_account_id ON billing_mail_keys (account_id);
COMMIT;
