-- Lua patterns for the names a request may carry, shared by every module that checks them.
return {
  UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$",
  -- The database's slug rule, less length and "--", which callers check themselves.
  SLUG = "^[a-z0-9][a-z0-9%-]+[a-z0-9]$",
}
