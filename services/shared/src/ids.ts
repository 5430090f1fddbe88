const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its textual form (any version), as PostgreSQL's uuid type reads it in canonical form. */
export const isUuid = (value: string): boolean => UUID.test(value);

/** An SQL identifier quoted for interpolation: doubled quotes inside, so no name breaks out. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
