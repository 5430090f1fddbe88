-- Rolling back restores the two helpers this migration dropped, and nothing else: the
-- search_path with pg_temp last, EXECUTE per role and no TEMPORARY stay, because undoing
-- them would reopen the pg_temp shadowing and PUBLIC EXECUTE holes on a database whose
-- later code expects neither (rolling back is for code, not for security).
CREATE FUNCTION app.has_session() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() IS NOT NULL $$;

CREATE FUNCTION app.current_hasura_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() ->> 'x-hasura-role' $$;

GRANT EXECUTE ON FUNCTION app.has_session(), app.current_hasura_role() TO hasura_app, app_service, platform_admin;
