#!/usr/bin/env node
// The `backchannel` command: runs the TypeScript CLI through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.node.ts');
