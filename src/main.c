/* SPDX-License-Identifier: GPL-2.0-or-later */
int main(void);
int
main(void)
{
	return 1;
}
