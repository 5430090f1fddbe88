#!/usr/bin/env node
// The `tenantry` CLI from a checkout: TypeScript through tsx, no build step.
import { register } from 'tsx/esm/api';

register();
await import('../services/cli/src/main.ts');
