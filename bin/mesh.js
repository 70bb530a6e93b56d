#!/usr/bin/env node
// Entry point of the one mesh binary: CLI, control plane and sidecar proxy.
import { main } from '../dist/src/cli.js';

main(process.argv);
