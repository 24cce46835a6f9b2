-- Monthly image quota in SQL (src/tenancy/quota.ts), so enqueueJob can check it in one round trip
-- as the last statement before COMMIT: the per-tenant lock is then held for that statement and the
-- commit only, instead of for the whole insert transaction.

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

-- Takes the tenant's quota lock (held until the caller's transaction ends) and only then reads
-- the usage: a plpgsql statement takes a fresh snapshot, so it sees every job committed by the
-- previous holder of the lock (one statement that locked and read would use a snapshot from
-- before the wait). The caller's own uncommitted jobs are counted, as they are visible to it.
CREATE FUNCTION harmon_quota_locked_usage(p_tenant uuid, p_start timestamp)
RETURNS TABLE (quota integer, images bigint, tokens bigint, "gpuMs" bigint, "inFlightImages" bigint)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('harmon-quota:' || p_tenant::text, 0));
  RETURN QUERY SELECT * FROM harmon_quota_usage(p_tenant, p_start);
END
$$;
