/*
 * /init of the riscv64 Linux guest (cargo xtask run --arch riscv64 --linux).
 *
 * Built by xtask/src/guests/linux_riscv64.rs against the kernel's own
 * nolibc (tools/include/nolibc, installed with the kernel's UAPI headers as
 * a sysroot), statically, with no C library:
 *
 *   riscv64-linux-gnu-gcc -Os -static -nostdlib -I<sysroot>/include \
 *       -o init init.c -lgcc
 *
 * It mounts /proc and reads the kernel command line. With the word
 * guestaspace.init_fails there, it says so and exits 1, so that the kernel
 * panics ("Attempted to kill init!"). Otherwise it prints the userspace
 * line, the isa line of /proc/cpuinfo, how many CPUs it lists, a line from a
 * process pinned to each CPU in turn saying where it ran, /proc/interrupts,
 * and powers the machine off (reboot(2), which the kernel turns into SBI
 * SRST).
 *
 * The lines it prints are the ones xtask/src/guests/initramfs.rs names;
 * a unit test there checks they match.
 */
/* All of nolibc, in the order its headers need one another. */
#include <nolibc.h>

static char buf[16384];

static void say(const char *text)
{
	write(1, text, strlen(text));
}

/* Reads the small file at path into buf, NUL-terminated; its length, or
 * -1 if it cannot be opened. */
static long read_file(const char *path)
{
	long len = 0, got;
	int fd = open(path, O_RDONLY, 0);

	if (fd < 0)
		return -1;
	while (len < (long)sizeof(buf) - 1 &&
	       (got = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += got;
	close(fd);
	buf[len] = 0;
	return len;
}

/* Whether text starts with prefix (nolibc has no strncmp). */
static int starts_with(const char *text, const char *prefix)
{
	while (*prefix)
		if (*text++ != *prefix++)
			return 0;
	return 1;
}

/* Whether the space-separated words of text include word. */
static int has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	while (*text) {
		while (*text == ' ' || *text == '\n')
			text++;
		if (starts_with(text, word) &&
		    (text[n] == 0 || text[n] == ' ' || text[n] == '\n'))
			return 1;
		while (*text && *text != ' ' && *text != '\n')
			text++;
	}
	return 0;
}

/* Prints the first line of buf that starts with prefix, after "guestaspace: ". */
static void say_line_starting(const char *prefix)
{
	char *line = buf;

	while (*line) {
		char *end = line;

		while (*end && *end != '\n')
			end++;
		if (starts_with(line, prefix)) {
			say("guestaspace: ");
			write(1, line, end - line);
			say("\n");
			return;
		}
		line = *end ? end + 1 : end;
	}
	say("guestaspace: no line starts with ");
	say(prefix);
	say("\n");
}

/* How many lines of buf start with prefix. */
static long count_lines_starting(const char *prefix)
{
	const char *line = buf;
	long n = 0;

	while (*line) {
		n += starts_with(line, prefix);
		while (*line && *line != '\n')
			line++;
		if (*line)
			line++;
	}
	return n;
}

/* Prints n in decimal (nolibc's printf would pull in more than this). */
static void say_number(long n)
{
	char digits[24];
	int i = sizeof(digits);

	digits[--i] = 0;
	do {
		digits[--i] = '0' + n % 10;
		n /= 10;
	} while (n && i > 0);
	say(digits + i);
}

/* Says how many CPUs /proc/cpuinfo lists, then runs one child process
 * pinned to each (sched_setaffinity) and has it say where it runs
 * (getcpu): every CPU the kernel brought up runs user code. */
static void run_on_every_cpu(long cpus)
{
	long cpu;

	say("guestaspace: nproc ");
	say_number(cpus);
	say("\n");
	for (cpu = 0; cpu < cpus && cpu < 64; cpu++) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			unsigned long mask = 1UL << cpu;
			unsigned int here = ~0U;

			if (my_syscall3(__NR_sched_setaffinity, 0, sizeof(mask), &mask) != 0)
				say("guestaspace: sched_setaffinity failed\n");
			my_syscall3(__NR_getcpu, &here, 0, 0);
			say("guestaspace: a process pinned to CPU ");
			say_number(cpu);
			say(" runs on CPU ");
			say_number(here);
			say("\n");
			exit(0);
		}
		if (pid > 0)
			waitpid(pid, &status, 0);
	}
}

int main(void)
{
	if (mount("proc", "/proc", "proc", 0, 0) != 0)
		say("guestaspace: cannot mount /proc\n");
	if (read_file("/proc/cmdline") >= 0 && has_word(buf, "guestaspace.init_fails")) {
		say("guestaspace: guestaspace.init_fails is set, /init exits 1\n");
		return 1;
	}
	say("guestaspace: userspace is up\n");
	if (read_file("/proc/cpuinfo") >= 0) {
		say_line_starting("isa");
		run_on_every_cpu(count_lines_starting("processor"));
	}
	if (read_file("/proc/interrupts") >= 0) {
		say("guestaspace: /proc/interrupts:\n");
		say(buf);
	}
	reboot(LINUX_REBOOT_CMD_POWER_OFF);
	say("guestaspace: the power-off returned\n");
	return 2;
}
