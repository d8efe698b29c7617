/**
 * What a key may do. Each scope includes the ones before it, except `metrics`, which only scrapes
 * `/metrics`: `read` ⊂ `operate` (drain, undrain, migrate, pause, resume, halt) ⊂ `admin` (catalog,
 * audit). A `read` key may also scrape. (Its own module: the config parses keys with it and the
 * access check reads the config, so neither may hold it.)
 */
export const SCOPES = ['metrics', 'read', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
