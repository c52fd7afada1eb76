from inceptune.cli import main

main()
