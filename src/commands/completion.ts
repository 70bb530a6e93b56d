// mesh completion bash|zsh|fish: shell completion generated from the command tree itself, so it
// never falls behind the commands (zsh runs the bash function through bashcompinit).
import type { Command } from 'commander';
import { MeshError } from '../util/errors.js';

interface Node {
  path: string[];
  description: string;
  subcommands: string[];
  options: string[];
}

function walk(cmd: Command, path: string[], out: Node[]): void {
  const visible = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  const options = cmd.options.filter((o) => !o.hidden).flatMap((o) => [o.short, o.long].filter((f): f is string => !!f));
  out.push({ path, description: cmd.description(), subcommands: visible.flatMap((c) => [c.name(), ...c.aliases()]), options: [...options, '--help'] });
  for (const c of visible) walk(c, [...path, c.name()], out);
}

const quoteFish = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export function bashCompletion(program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const aliases = program.commands.flatMap((c) => c.aliases().map((a) => `${a}) w=${c.name()} ;;`));
  const keys = nodes.filter((n) => n.path.length).map((n) => `"${n.path.join(' ')}"`);
  const cases = nodes.map((n) => `    "${n.path.join(' ')}") words="${[...n.subcommands, ...n.options].join(' ')}" ;;`);
  return `# mesh completion for bash: eval "$(mesh completion bash)" (or save it under bash-completion's completions/)
_mesh_completions() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" key="" w i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in
      ${aliases.join('\n      ') || '__none__) ;;'}
    esac
    case "$key\${key:+ }$w" in
      ${keys.join('|')}) key="$key\${key:+ }$w" ;;
    esac
  done
  case "$key" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _mesh_completions mesh
`;
}

export function zshCompletion(program: Command): string {
  return `# mesh completion for zsh: eval "$(mesh completion zsh)" in ~/.zshrc (uses zsh's bash completion support)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program).split('\n').slice(1).join('\n')}`;
}

export function fishCompletion(program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const lines = ['# mesh completion for fish: mesh completion fish > ~/.config/fish/completions/mesh.fish', 'complete -c mesh -f'];
  for (const n of nodes) {
    // The condition says where this node's words apply: at the top, or after its command path.
    const cond = n.path.length === 0
      ? '__fish_use_subcommand'
      : n.path.map((p) => `__fish_seen_subcommand_from ${p}`).join('; and ');
    for (const child of nodes.filter((x) => x.path.length === n.path.length + 1 && x.path.slice(0, -1).join(' ') === n.path.join(' '))) {
      lines.push(`complete -c mesh -n ${quoteFish(cond)} -a ${child.path.at(-1)} -d ${quoteFish(child.description.split(':')[0]!.slice(0, 80))}`);
    }
    for (const o of n.options) {
      const flag = o.startsWith('--') ? `-l ${o.slice(2)}` : `-s ${o.slice(1)}`;
      lines.push(`complete -c mesh -n ${quoteFish(cond)} ${flag}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print shell completion: eval "$(mesh completion bash)", or zsh, or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .action((shell: string) => {
      const render = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[shell];
      if (!render) throw new MeshError(`no completion for shell '${shell}'`, "use 'mesh completion bash', 'mesh completion zsh' or 'mesh completion fish'");
      process.stdout.write(render(program));
    });
}
