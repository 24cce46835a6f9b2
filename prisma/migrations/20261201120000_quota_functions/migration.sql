-- Monthly image quota in SQL (src/tenancy/quota.ts): the usage formula, and the check enqueueJob
-- arms in its insert transaction and Postgres runs at COMMIT, so the per-tenant lock is held for
-- the commit only instead of for the whole insert transaction.

-- One tenant's quota, billed usage since p_start (UsageRecord."at" holds the UTC wall clock) and
-- the images its queued/running generate jobs reserve. Aggregates without GROUP BY always yield a
-- row, so the laterals never drop the tenant; no row means no tenant. Sums are bigint (gpuMs can
-- pass 2^31 in a month).
CREATE FUNCTION harmon_quota_usage(p_tenant uuid, p_start timestamp)
RETURNS TABLE (quota integer, images bigint, tokens bigint, "gpuMs" bigint, "inFlightImages" bigint)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
  SELECT t."monthlyImageQuota", u.images, u.tokens, u."gpuMs", f.images
  FROM "Tenant" t
  CROSS JOIN LATERAL (
    SELECT COALESCE(SUM(r.images), 0)::bigint AS images, COALESCE(SUM(r.tokens), 0)::bigint AS tokens,
           COALESCE(SUM(r."gpuMs"), 0)::bigint AS "gpuMs"
    FROM "UsageRecord" r WHERE r."tenantId" = t.id AND r.at >= p_start) u
  CROSS JOIN LATERAL (
    SELECT COALESCE(SUM(COALESCE((j.input->>'count')::int, 1)), 0)::bigint AS images FROM "Job" j
    WHERE j."tenantId" = t.id AND j.kind = 'GENERATE' AND j.status IN ('QUEUED', 'RUNNING')) f
  WHERE t.id = p_tenant
$$;

-- The quota check of enqueueJob, run at COMMIT: a deferred constraint trigger on the Job insert,
-- armed by the transaction itself (set_config('harmon.quota_period_start', <period start>, true)
-- before the insert; unarmed inserts are not checked). It takes the tenant's quota lock and only
-- then reads usage: a plpgsql statement takes a fresh snapshot, so it sees every job committed by
-- the previous holder of the lock (one statement that locked and read would use a snapshot from
-- before the wait); the transaction's own jobs are visible to it and counted. Running at commit
-- means the lock serialises one tenant's enqueues only for the commit itself, with no client
-- round trip inside the locked window.
CREATE FUNCTION harmon_job_quota_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  u record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('harmon-quota:' || NEW."tenantId"::text, 0));
  SELECT * INTO u
  FROM harmon_quota_usage(NEW."tenantId", current_setting('harmon.quota_period_start')::timestamp);
  IF u.images + u."inFlightImages" > u.quota THEN
    RAISE EXCEPTION USING
      MESSAGE = 'harmon_quota_exceeded',
      DETAIL = json_build_object('quota', u.quota, 'used', u.images + u."inFlightImages")::text;
  END IF;
  RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER "Job_quota_check" AFTER INSERT ON "Job"
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (NEW.kind = 'GENERATE' AND COALESCE(current_setting('harmon.quota_period_start', true), '') <> '')
EXECUTE FUNCTION harmon_job_quota_check();
